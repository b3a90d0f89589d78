package notify

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

// t0 is the fake clock's start, with nanoseconds.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)

func openStore(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "slipway.db")
	}
	s, err := sqlstore.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// answer is what a receiver says to one request.
type answer struct {
	status int
	header map[string]string
	body   string
	// hang waits for the client to give up instead of answering.
	hang bool
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on loopback that answers from a script
// (the last answer repeats) and records every request.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	answers []answer
	reqs    []received
	got     chan received
}

func newReceiver(t *testing.T, answers ...answer) *receiver {
	t.Helper()
	if len(answers) == 0 {
		answers = []answer{{status: http.StatusNoContent}}
	}
	r := &receiver{answers: answers, got: make(chan received, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		rec := received{header: req.Header.Clone(), body: b}
		r.mu.Lock()
		r.reqs = append(r.reqs, rec)
		a := r.answers[0]
		if len(r.answers) > 1 {
			r.answers = r.answers[1:]
		}
		r.mu.Unlock()
		r.got <- rec
		if a.hang {
			<-req.Context().Done()
			return
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// fixture is a store, a fake clock, the webhook service and a dispatcher
// over them.
type fixture struct {
	t     *testing.T
	store store.Store
	clock *clock.Fake
	svc   *Service
	disp  *Dispatcher
}

func newFixture(t *testing.T, s store.Store, c DispatcherConfig) *fixture {
	t.Helper()
	if s == nil {
		s = openStore(t, "")
	}
	clk := clock.NewFake(t0)
	c.Store, c.Clock = s, clk
	if c.Source == "" {
		c.Source = "slipway://test"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Jitter == nil {
		c.Jitter = func() float64 { return 0.5 }
	}
	d, err := NewDispatcher(c)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	return &fixture{t: t, store: s, clock: clk, disp: d,
		svc: NewService(ServiceConfig{Store: s, Clock: clk, Policy: c.Policy, Dispatcher: d})}
}

// add adds a webhook for events to url with a known secret.
func (f *fixture) add(url string, events ...string) domain.Webhook {
	f.t.Helper()
	w, err := f.svc.Add(f.t.Context(), "admin", NewWebhook{URL: url, Events: events, Secret: "0123456789abcdef-secret"})
	if err != nil {
		f.t.Fatalf("Add(%s): %v", url, err)
	}
	return w
}

// enqueue raises ev in a transaction that commits.
func (f *fixture) enqueue(ev Event) {
	f.t.Helper()
	if ev.Time.IsZero() {
		ev.Time = f.clock.Now()
	}
	err := f.store.Update(f.t.Context(), func(ctx context.Context, tx store.Tx) error { return Enqueue(ctx, tx, ev) })
	if err != nil {
		f.t.Fatalf("Enqueue: %v", err)
	}
}

// runDue attempts what is due and checks how many were.
func (f *fixture) runDue(want int) {
	f.t.Helper()
	n, err := f.disp.RunDue(f.t.Context())
	if err != nil {
		f.t.Fatalf("RunDue: %v", err)
	}
	if n != want {
		f.t.Fatalf("RunDue attempted %d deliveries, want %d", n, want)
	}
}

// deliveries lists every delivery, newest first.
func (f *fixture) deliveries(webhook string) []domain.Delivery {
	f.t.Helper()
	ds, _, err := f.store.ListDeliveries(f.t.Context(), store.DeliveryFilter{WebhookID: webhook}, store.Page{})
	if err != nil {
		f.t.Fatalf("ListDeliveries: %v", err)
	}
	return ds
}

// only returns the one delivery of a webhook.
func (f *fixture) only(webhook string) domain.Delivery {
	f.t.Helper()
	ds := f.deliveries(webhook)
	if len(ds) != 1 {
		f.t.Fatalf("webhook %s has %d deliveries, want 1: %+v", webhook, len(ds), ds)
	}
	return ds[0]
}

var approved = Event{Type: TypePromotionApproved, Subject: "model/fraud/promotion/7",
	Data: map[string]any{"model": "fraud", "version": 3, "environment": "production"}}
