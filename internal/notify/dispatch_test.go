package notify

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// A delivery is a CloudEvents 1.0 structured-mode body, signed over the
// timestamp and the raw body with the webhook's secret.
func TestDeliveryIsASignedCloudEvent(t *testing.T) {
	rcv := newReceiver(t, answer{status: http.StatusOK})
	f := newFixture(t, nil, DispatcherConfig{})
	w := f.add(rcv.srv.URL+"/hooks/slipway?team=ml", TypePromotionApproved)
	ev := approved
	ev.ID = "c0ffee"
	ev.Time = t0.Add(-time.Second)
	f.enqueue(ev)
	f.runDue(1)

	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if ct := r.header.Get("Content-Type"); ct != "application/cloudevents+json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get(HeaderEvent) != TypePromotionApproved || r.header.Get(HeaderDelivery) != strconv.FormatInt(f.only(w.ID).ID, 10) {
		t.Errorf("event headers: %v", r.header)
	}
	if ts := r.header.Get(HeaderTimestamp); ts != strconv.FormatInt(t0.Unix(), 10) {
		t.Errorf("timestamp header %q, want the dispatcher's clock %d", ts, t0.Unix())
	}
	sig := r.header.Get(HeaderSignature)
	if err := Verify(w.Secret, sig, r.header.Get(HeaderTimestamp), r.body, t0, 5*time.Minute); err != nil {
		t.Errorf("signature %q does not verify with the webhook's secret: %v", sig, err)
	}
	for name, tamper := range map[string]func() (secret, sig, ts string, body []byte, now time.Time){
		"another secret": func() (string, string, string, []byte, time.Time) {
			return "another-secret-16", sig, r.header.Get(HeaderTimestamp), r.body, t0
		},
		"an edited body": func() (string, string, string, []byte, time.Time) {
			return w.Secret, sig, r.header.Get(HeaderTimestamp), append(bytes.Clone(r.body), ' '), t0
		},
		"a new timestamp": func() (string, string, string, []byte, time.Time) {
			return w.Secret, sig, strconv.FormatInt(t0.Unix()+1, 10), r.body, t0
		},
		"a replay later": func() (string, string, string, []byte, time.Time) {
			return w.Secret, sig, r.header.Get(HeaderTimestamp), r.body, t0.Add(time.Hour)
		},
	} {
		secret, sig, ts, body, now := tamper()
		if err := Verify(secret, sig, ts, body, now, 5*time.Minute); err == nil {
			t.Errorf("Verify accepted %s", name)
		}
	}

	// The body: every required CloudEvents attribute and nothing unknown.
	var ce map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &ce); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	want := map[string]string{
		"specversion": `"1.0"`, "id": `"c0ffee"`, "source": `"slipway://test"`, "type": `"dev.slipway.promotion.approved"`,
		"subject": `"model/fraud/promotion/7"`, "datacontenttype": `"application/json"`,
		"time": `"` + ev.Time.Format(time.RFC3339Nano) + `"`,
		"data": `{"environment":"production","model":"fraud","version":3}`,
	}
	if len(ce) != len(want) {
		t.Errorf("body has attributes %v, want exactly %v", keys(ce), keys(want))
	}
	for k, v := range want {
		if string(ce[k]) != v {
			t.Errorf("body %s = %s, want %s", k, ce[k], v)
		}
	}
	var tm string
	_ = json.Unmarshal(ce["time"], &tm)
	if _, err := time.Parse(time.RFC3339, tm); err != nil {
		t.Errorf("time %q is not RFC 3339: %v", tm, err)
	}

	d := f.only(w.ID)
	if d.Status != domain.DeliveryDelivered || d.Attempts != 1 || d.LastStatusCode != 200 || d.LastError != "" || !d.NextAttemptAt.IsZero() {
		t.Errorf("delivered: %+v", d)
	}
	f.clock.Advance(24 * time.Hour)
	f.runDue(0)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRetryOn500ThenSuccess(t *testing.T) {
	rcv := newReceiver(t, answer{status: 500, body: "database\nis down"}, answer{status: 202})
	f := newFixture(t, nil, DispatcherConfig{})
	w := f.add(rcv.srv.URL, "promotion.*")
	f.enqueue(approved)
	f.runDue(1)

	d := f.only(w.ID)
	// Backoff 30 s with the jitter at one half: 15 s + 7.5 s.
	if d.Status != domain.DeliveryPending || d.Attempts != 1 || d.LastStatusCode != 500 ||
		d.LastError != "HTTP 500 Internal Server Error: database is down" || !d.NextAttemptAt.Equal(t0.Add(22500*time.Millisecond)) {
		t.Fatalf("after a 500: %+v", d)
	}
	f.clock.Advance(22 * time.Second)
	f.runDue(0)
	f.clock.Advance(500 * time.Millisecond)
	f.runDue(1)
	d = f.only(w.ID)
	if d.Status != domain.DeliveryDelivered || d.Attempts != 2 || d.LastStatusCode != 202 || d.LastError != "" {
		t.Fatalf("after the retry: %+v", d)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 || !bytes.Equal(reqs[0].body, reqs[1].body) || reqs[0].header.Get(HeaderTimestamp) == reqs[1].header.Get(HeaderTimestamp) {
		t.Errorf("a retry must send the same body with a fresh timestamp: %d requests", len(reqs))
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		wait       time.Duration
	}{
		{"seconds", "120", 120 * time.Second},
		{"an HTTP date", t0.Add(90 * time.Second).Format(http.TimeFormat), 90*time.Second - 890}, // the date has no fraction
		{"beyond the cap", "86400", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, answer{status: 429, header: map[string]string{"Retry-After": tc.retryAfter}}, answer{status: 200})
			f := newFixture(t, nil, DispatcherConfig{})
			w := f.add(rcv.srv.URL, TypePromotionApproved)
			f.enqueue(approved)
			f.runDue(1)
			d := f.only(w.ID)
			if d.Status != domain.DeliveryPending || d.LastStatusCode != 429 || !d.NextAttemptAt.Equal(t0.Add(tc.wait)) {
				t.Fatalf("after a 429 with Retry-After %s: next attempt %s (+%s), want +%s; %+v",
					tc.retryAfter, d.NextAttemptAt, d.NextAttemptAt.Sub(t0), tc.wait, d)
			}
			f.clock.Advance(tc.wait - time.Nanosecond)
			f.runDue(0)
			f.clock.Advance(time.Nanosecond)
			f.runDue(1)
			if d := f.only(w.ID); d.Status != domain.DeliveryDelivered || d.Attempts != 2 {
				t.Fatalf("after waiting: %+v", d)
			}
		})
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "7": 7 * time.Second, " 7 ": 7 * time.Second, "-1": 0, "1e3": 0, "99999999999": 0,
		now.Add(time.Minute).Format(http.TimeFormat):  time.Minute,
		now.Add(-time.Minute).Format(http.TimeFormat): 0,
		"tomorrow": 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestPermanent4xxFailsAtOnce(t *testing.T) {
	for _, code := range []int{400, 401, 404, 410, 301} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rcv := newReceiver(t, answer{status: code, body: "no such hook", header: map[string]string{"Location": "http://127.0.0.1:1/"}})
			f := newFixture(t, nil, DispatcherConfig{})
			w := f.add(rcv.srv.URL, TypePromotionApproved)
			f.enqueue(approved)
			f.runDue(1)
			d := f.only(w.ID)
			if d.Status != domain.DeliveryFailed || d.Attempts != 1 || d.LastStatusCode != code ||
				!strings.HasPrefix(d.LastError, "HTTP "+strconv.Itoa(code)) || !strings.HasSuffix(d.LastError, ": no such hook") || !d.NextAttemptAt.IsZero() {
				t.Fatalf("after a %d: %+v", code, d)
			}
			f.clock.Advance(24 * time.Hour)
			f.runDue(0)
			if n := len(rcv.requests()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1", n)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	rcv := newReceiver(t, answer{status: 503})
	f := newFixture(t, nil, DispatcherConfig{MaxAttempts: 3, Backoff: time.Second, MaxBackoff: 2 * time.Second})
	w := f.add(rcv.srv.URL, TypePromotionApproved)
	f.enqueue(approved)
	for i := 1; i <= 3; i++ {
		f.runDue(1)
		f.clock.Advance(time.Hour)
	}
	f.runDue(0)
	d := f.only(w.ID)
	if d.Status != domain.DeliveryFailed || d.Attempts != 3 || d.LastStatusCode != 503 ||
		d.LastError != "gave up after 3 attempts; the last: HTTP 503 Service Unavailable" {
		t.Fatalf("after 3 attempts: %+v", d)
	}
	if n := len(rcv.requests()); n != 3 {
		t.Fatalf("receiver got %d requests, want 3", n)
	}
}

func TestBackoffGrowsToItsCap(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{Jitter: func() float64 { return 0.999999 }})
	var prev time.Duration
	for n := 1; n <= 10; n++ {
		got := f.disp.delay(n, 0)
		if got < prev || got > 30*time.Minute || (n == 1 && got > 30*time.Second) {
			t.Errorf("delay after attempt %d = %s (previous %s)", n, got, prev)
		}
		prev = got
	}
	if prev < 29*time.Minute {
		t.Errorf("delay never reached the cap: %s", prev)
	}
	if got := f.disp.delay(1, 10*time.Millisecond); got != time.Second {
		t.Errorf("a Retry-After under a second waits %s, want 1s", got)
	}
}

// A refusal by the egress policy is a failure at once, recorded with a
// reason an operator can act on; the receiver never sees a request.
func TestEgressRefusalIsRecorded(t *testing.T) {
	rcv := newReceiver(t)
	policy := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	f := newFixture(t, nil, DispatcherConfig{Policy: policy})
	// A host name passes when added; its address is checked when dialled.
	w := f.add(strings.Replace(rcv.srv.URL, "127.0.0.1", "localhost", 1), TypePromotionApproved)
	f.enqueue(approved)
	f.runDue(1)
	d := f.only(w.ID)
	if d.Status != domain.DeliveryFailed || d.Attempts != 1 || d.LastStatusCode != 0 ||
		!strings.Contains(d.LastError, "refused by the egress policy") || !strings.Contains(d.LastError, "not in the egress allowlist") {
		t.Fatalf("egress refusal: %+v", d)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("receiver got %d requests", n)
	}
}

func TestNetworkErrorsAndTimeoutsAreRetried(t *testing.T) {
	rcv := newReceiver(t, answer{hang: true}, answer{status: 200})
	closed := newReceiver(t)
	closed.srv.Close()
	f := newFixture(t, nil, DispatcherConfig{Timeout: 200 * time.Millisecond})
	slow := f.add(rcv.srv.URL, TypePromotionApproved)
	gone := f.add(closed.srv.URL, TypePromotionApproved)
	f.enqueue(approved)
	f.runDue(2)
	if d := f.only(slow.ID); d.Status != domain.DeliveryPending || d.LastError != "no answer within 200ms" || d.LastStatusCode != 0 {
		t.Errorf("a receiver that does not answer: %+v", d)
	}
	if d := f.only(gone.ID); d.Status != domain.DeliveryPending || !strings.HasPrefix(d.LastError, "network error: ") ||
		strings.Contains(d.LastError, closed.srv.URL) {
		t.Errorf("a receiver that is down: %+v", d)
	}
}

// A webhook gets one attempt at a time: a backlog for one receiver waits
// its turn without taking every slot from the others.
func TestOneAttemptAtATimePerWebhook(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{Concurrency: 4})
	a := f.add("http://127.0.0.1:1/a", "*")
	b := f.add("http://127.0.0.1:1/b", "*")
	for i := range 3 {
		f.enqueue(Event{Type: TypePromotionApproved, ID: "ev-" + strconv.Itoa(i), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	f.clock.Advance(time.Minute)
	claim := func(want ...string) {
		t.Helper()
		jobs, err := f.disp.claim(t.Context(), 4)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.hook.ID+"/"+j.delivery.EventID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("claimed %v, want %v", got, want)
		}
	}
	claim(a.ID+"/ev-0", b.ID+"/ev-0")
	claim() // both have an attempt in flight
	f.disp.done(a.ID)
	claim(a.ID + "/ev-1")
}

func TestAttemptsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok, gone := newReceiver(t, answer{status: 200}), newReceiver(t, answer{status: 410})
	f := newFixture(t, nil, DispatcherConfig{Metrics: reg})
	f.add(ok.srv.URL, "*")
	f.add(gone.srv.URL, "*")
	f.enqueue(approved)
	f.runDue(2)
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "slipway_webhook_attempts_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if want := map[string]float64{"delivered": 1, "failed": 1}; !maps.Equal(got, want) {
		t.Errorf("slipway_webhook_attempts_total = %v, want %v", got, want)
	}
	if _, err := NewDispatcher(DispatcherConfig{Store: f.store, Metrics: reg}); err == nil {
		t.Error("a second dispatcher registered the same metric")
	}
}
