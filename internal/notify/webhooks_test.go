package notify

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func auditOf(t *testing.T, s store.Store, id string) []audit.Entry {
	t.Helper()
	es, _, err := s.ListAudit(t.Context(), store.AuditFilter{Subject: "webhook/" + id}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestAddRefusesBadInputAndStoresNothing(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{})
	ok := NewWebhook{URL: "https://hooks.example/x", Events: []string{"*"}}
	for name, in := range map[string]NewWebhook{
		"no url":               {Events: ok.Events},
		"no scheme":            {URL: "hooks.example/x", Events: ok.Events},
		"ftp":                  {URL: "ftp://hooks.example/x", Events: ok.Events},
		"file":                 {URL: "file:///etc/passwd", Events: ok.Events},
		"javascript":           {URL: "javascript:alert(1)", Events: ok.Events},
		"no host":              {URL: "http:///x", Events: ok.Events},
		"user and password":    {URL: "https://user:pw@hooks.example/x", Events: ok.Events},
		"a fragment":           {URL: "https://hooks.example/x#frag", Events: ok.Events},
		"a space":              {URL: "https://hooks.example/a b", Events: ok.Events},
		"a newline":            {URL: "https://hooks.example/a\nb", Events: ok.Events},
		"cloud metadata":       {URL: "http://169.254.169.254/latest/meta-data", Events: ok.Events},
		"link-local":           {URL: "http://[fe80::1]/", Events: ok.Events},
		"a disguised address":  {URL: "http://2852039166/", Events: ok.Events},
		"a bad port":           {URL: "http://hooks.example:99999/", Events: ok.Events},
		"too long":             {URL: "https://hooks.example/" + strings.Repeat("a", 3000), Events: ok.Events},
		"no events":            {URL: ok.URL},
		"a misspelt event":     {URL: ok.URL, Events: []string{"promotion.aproved"}},
		"a short secret":       {URL: ok.URL, Events: ok.Events, Secret: "short"},
		"a secret with spaces": {URL: ok.URL, Events: ok.Events, Secret: "a secret with spaces in it"},
		"a huge secret":        {URL: ok.URL, Events: ok.Events, Secret: strings.Repeat("s", MaxSecretBytes+1)},
	} {
		_, err := f.svc.Add(t.Context(), "admin", in)
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Add with %s: %v, want ErrInvalid", name, err)
		}
	}
	if ws, _, err := f.svc.List(t.Context(), store.Page{}); err != nil || len(ws) != 0 {
		t.Errorf("refused webhooks were stored: %v, %v", ws, err)
	}
	if es, _, err := f.store.ListAudit(t.Context(), store.AuditFilter{}, store.Page{}); err != nil || len(es) != 0 {
		t.Errorf("refusals were audited: %d entries, %v", len(es), err)
	}
	_, err := f.svc.Add(t.Context(), "admin", NewWebhook{URL: "http://169.254.169.254/", Events: ok.Events})
	if err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("the metadata address's refusal does not say why: %v", err)
	}
}

func TestAddListRemove(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{})
	ctx := t.Context()
	url := "https://hooks.example/services/T000/B000/XXXXSECRETPATH?token=querysecret"
	w, err := f.svc.Add(ctx, "alice", NewWebhook{URL: url, Events: []string{"promotion.rejected", "promotion.approved", "promotion.rejected"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.Secret, "whsec_") || len(w.Secret) < 40 || w.URL != url || w.CreatedBy != "alice" || !w.CreatedAt.Equal(t0) ||
		strings.Join(w.Events, ",") != "promotion.approved,promotion.rejected" || checkID(w.ID) != nil {
		t.Fatalf("Add: %+v", w)
	}
	if b, _ := json.Marshal(w); strings.Contains(string(b), w.Secret) {
		t.Errorf("a webhook's JSON shows its secret: %s", b)
	}
	got, err := f.svc.Get(ctx, w.ID)
	if err != nil || got.Secret != w.Secret || got.URL != url {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	for id, want := range map[string]error{"wh_0000000000000000": domain.ErrNotFound, "nope": domain.ErrInvalid, "": domain.ErrInvalid} {
		if _, err := f.svc.Get(ctx, id); !errors.Is(err, want) {
			t.Errorf("Get(%q): %v, want %v", id, err, want)
		}
		if _, err := f.svc.Remove(ctx, "alice", id); !errors.Is(err, want) {
			t.Errorf("Remove(%q): %v, want %v", id, err, want)
		}
		if _, err := f.svc.Test(ctx, "alice", id); !errors.Is(err, want) {
			t.Errorf("Test(%q): %v, want %v", id, err, want)
		}
		if _, _, err := f.svc.Deliveries(ctx, store.DeliveryFilter{WebhookID: id}, store.Page{}); id != "" && !errors.Is(err, want) {
			t.Errorf("Deliveries(%q): %v, want %v", id, err, want)
		}
	}

	// The audit log, readable by every role, names the endpoint but
	// neither the credential in the URL nor the secret.
	f.enqueue(approved)
	if _, err := f.svc.Remove(ctx, "bob", w.ID); err != nil {
		t.Fatal(err)
	}
	es := auditOf(t, f.store, w.ID)
	if len(es) != 2 || es[0].Action != "webhook.create" || es[0].Actor != "alice" || es[1].Action != "webhook.delete" || es[1].Actor != "bob" {
		t.Fatalf("audit: %+v", es)
	}
	for _, e := range es {
		doc := string(e.Before) + string(e.After)
		if strings.Contains(doc, "SECRETPATH") || strings.Contains(doc, "querysecret") || strings.Contains(doc, w.Secret) ||
			!strings.Contains(doc, `"endpoint":"https://hooks.example"`) || !strings.Contains(doc, `"url_sha256":"`) {
			t.Errorf("audit %s document: %s", e.Action, doc)
		}
	}
	if ds := f.deliveries(""); len(ds) != 0 {
		t.Errorf("a removed webhook left %d deliveries", len(ds))
	}
	if _, err := f.svc.Get(ctx, w.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
}

// Test sends a ping through the outbox to one webhook, whatever it
// subscribes to.
func TestPing(t *testing.T) {
	rcv := newReceiver(t)
	f := newFixture(t, nil, DispatcherConfig{})
	w := f.add(rcv.srv.URL, TypePromotionCompleted)
	other := f.add(rcv.srv.URL+"/other", "*")
	d, err := f.svc.Test(t.Context(), "carol", w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhookID != w.ID || d.EventType != TypePing || d.Status != domain.DeliveryPending || d.Subject != "webhook/"+w.ID {
		t.Fatalf("Test: %+v", d)
	}
	f.runDue(1)
	reqs := rcv.requests()
	if len(reqs) != 1 || reqs[0].header.Get(HeaderEvent) != TypePing {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	var ce struct {
		Type string   `json:"type"`
		Data PingData `json:"data"`
	}
	if err := json.Unmarshal(reqs[0].body, &ce); err != nil || ce.Type != "dev.slipway.webhook.ping" || ce.Data.Webhook != w.ID || ce.Data.SentBy != "carol" {
		t.Fatalf("ping body %s: %v", reqs[0].body, err)
	}
	got, err := f.svc.Delivery(t.Context(), d.ID)
	if err != nil || got.Status != domain.DeliveryDelivered {
		t.Fatalf("ping delivery: %+v, %v", got, err)
	}
	if ds := f.deliveries(other.ID); len(ds) != 0 {
		t.Errorf("a ping of one webhook reached another")
	}
	if es := auditOf(t, f.store, w.ID); len(es) != 2 || es[1].Action != "webhook.test" || es[1].Actor != "carol" {
		t.Errorf("audit: %+v", es)
	}
	ds, _, err := f.svc.Deliveries(t.Context(), store.DeliveryFilter{WebhookID: w.ID, Status: domain.DeliveryDelivered}, store.Page{})
	if err != nil || len(ds) != 1 {
		t.Errorf("Deliveries(delivered): %v, %v", ds, err)
	}
	if _, _, err := f.svc.Deliveries(t.Context(), store.DeliveryFilter{Status: "lost"}, store.Page{}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Deliveries with a bad status: %v", err)
	}
}

// Pending deliveries survive a restart: those never tried go out at once,
// and one claimed by a process that died goes out when its claim lapses.
func TestRestartResumesPendingDeliveries(t *testing.T) {
	rcv := newReceiver(t, answer{status: 200})
	path := filepath.Join(t.TempDir(), "slipway.db")
	s1 := openStore(t, path)
	f1 := newFixture(t, s1, DispatcherConfig{})
	w := f1.add(rcv.srv.URL, "promotion.*")
	f1.enqueue(approved)
	f1.enqueue(Event{Type: TypePromotionCompleted, Time: t0})
	// The first process claims the oldest delivery and dies before it
	// sends anything.
	jobs, err := f1.disp.claim(t.Context(), 1)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	claimed := jobs[0].delivery.ID
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	f2 := newFixture(t, openStore(t, path), DispatcherConfig{})
	f2.runDue(1) // the unclaimed one
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("after restart: %d requests, want 1", n)
	}
	f2.clock.Advance(f2.disp.lease)
	f2.runDue(1) // the claimed one, its claim lapsed
	for _, d := range f2.deliveries(w.ID) {
		wantAttempts := 1
		if d.ID == claimed {
			wantAttempts = 2 // the attempt that died counts
		}
		if d.Status != domain.DeliveryDelivered || d.Attempts != wantAttempts {
			t.Errorf("delivery %d after restart: %+v", d.ID, d)
		}
	}
	if n := len(rcv.requests()); n != 2 {
		t.Fatalf("after the claim lapsed: %d requests, want 2", n)
	}
}

// Run sends what a commit queued without waiting for the poll when kicked,
// and returns once its context ends.
func TestRunDeliversUntilStopped(t *testing.T) {
	rcv := newReceiver(t)
	f := newFixture(t, nil, DispatcherConfig{PollInterval: time.Hour})
	w := f.add(rcv.srv.URL, "*")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.disp.Run(ctx) }()

	if _, err := f.svc.Test(t.Context(), "admin", w.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rcv.got:
		if r.header.Get(HeaderEvent) != TypePing {
			t.Errorf("got %s", r.header.Get(HeaderEvent))
		}
	case <-time.After(time.Minute): // a safety net, not an assertion
		t.Fatal("the kicked dispatcher sent nothing")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
	}
	// Run waited for the attempt to record its outcome.
	if d := f.only(w.ID); d.Status != domain.DeliveryDelivered {
		t.Errorf("after Run returned: %+v", d)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}
