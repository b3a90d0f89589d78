package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func createWebhook(t *testing.T, s store.Store, id string, events ...string) domain.Webhook {
	t.Helper()
	w := domain.Webhook{ID: id, URL: "https://hooks.example/" + id + "?a=1&b=<2>", Events: events,
		Secret: "s3cr3t-" + id, CreatedBy: "root", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateWebhook(ctx, w) })
	return w
}

func newDelivery(webhook, event string, at time.Time) domain.Delivery {
	return domain.Delivery{WebhookID: webhook, EventID: event, EventType: "promotion.approved",
		Subject: "model/fraud/promotion/1", EventTime: at, Data: json.RawMessage(`{"model":"fraud","n":1}`),
		Status: domain.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at}
}

func createDelivery(t *testing.T, s store.Store, d domain.Delivery) domain.Delivery {
	t.Helper()
	var got domain.Delivery
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateDelivery(ctx, d)
		return err
	})
	return got
}

func checkDelivery(t *testing.T, what string, got, want domain.Delivery) {
	t.Helper()
	for _, tt := range []struct {
		name      string
		got, want time.Time
	}{{"event time", got.EventTime, want.EventTime}, {"created at", got.CreatedAt, want.CreatedAt}, {"updated at", got.UpdatedAt, want.UpdatedAt}} {
		checkTime(t, what+": "+tt.name, tt.got, tt.want)
	}
	if want.NextAttemptAt.IsZero() != got.NextAttemptAt.IsZero() || (!want.NextAttemptAt.IsZero() && !sameTime(got.NextAttemptAt, want.NextAttemptAt)) {
		t.Errorf("%s: next attempt %v, want %v", what, got.NextAttemptAt, want.NextAttemptAt)
	}
	got.EventTime, got.CreatedAt, got.UpdatedAt, got.NextAttemptAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.EventTime, want.CreatedAt, want.UpdatedAt, want.NextAttemptAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func deliveryIDs(ds []domain.Delivery) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWebhook(t, s, "wh_b", "promotion.*", "rollout.rolled_back")
	got, err := s.GetWebhook(ctx, "wh_b")
	must(t, "GetWebhook", err)
	checkTime(t, "webhook created at", got.CreatedAt, w.CreatedAt)
	got.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("webhook round trip:\n got %+v\nwant %+v", got, w)
	}
	_, err = s.GetWebhook(ctx, "wh_missing")
	wantErr(t, "GetWebhook unknown", err, domain.ErrNotFound)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.CreateWebhook(ctx, domain.Webhook{ID: "wh_b", URL: "http://x", Events: []string{"*"}, Secret: "x", CreatedAt: t0})
	})
	wantErr(t, "CreateWebhook duplicate", err, domain.ErrConflict)

	createWebhook(t, s, "wh_c", "*")
	createWebhook(t, s, "wh_a", "promotion.approved")
	var ids []string
	cursor := ""
	for pages := 1; ; pages++ {
		ws, next, err := s.ListWebhooks(ctx, store.Page{Limit: 2, Cursor: cursor})
		must(t, "ListWebhooks", err)
		for _, w := range ws {
			ids = append(ids, w.ID)
			if w.Secret == "" {
				t.Errorf("ListWebhooks: %s without its secret", w.ID)
			}
		}
		if next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("ListWebhooks: the cursor does not advance")
		}
		cursor = next
	}
	if want := []string{"wh_a", "wh_b", "wh_c"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ListWebhooks: %v, want %v", ids, want)
	}
	_, _, err = s.ListWebhooks(ctx, store.Page{Cursor: "garbage!"})
	wantErr(t, "ListWebhooks bad cursor", err, domain.ErrInvalid)

	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh_missing") })
	wantErr(t, "DeleteWebhook unknown", err, domain.ErrNotFound)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh_c") })
	_, err = s.GetWebhook(ctx, "wh_c")
	wantErr(t, "GetWebhook deleted", err, domain.ErrNotFound)
}

func testDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	createWebhook(t, s, "wh_1", "*")
	createWebhook(t, s, "wh_2", "*")

	// Refusals change nothing.
	for name, d := range map[string]domain.Delivery{
		"unknown webhook":          newDelivery("wh_missing", "ev-0", t0),
		"pending without a time":   func() domain.Delivery { d := newDelivery("wh_1", "ev-0", t0); d.NextAttemptAt = time.Time{}; return d }(),
		"a status that is not one": func() domain.Delivery { d := newDelivery("wh_1", "ev-0", t0); d.Status = "lost"; return d }(),
	} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.CreateDelivery(ctx, d); return err })
		if err == nil {
			t.Errorf("CreateDelivery with %s: no error", name)
		}
	}
	if ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{}, store.Page{}); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries after refusals: %v, %v", ds, err)
	}

	// Round trip.
	want := newDelivery("wh_1", "ev-1", t0)
	first := createDelivery(t, s, want)
	if first.ID < 1 {
		t.Fatalf("CreateDelivery: ID %d", first.ID)
	}
	want.ID = first.ID
	checkDelivery(t, "CreateDelivery", first, want)
	got, err := s.GetDelivery(ctx, first.ID)
	must(t, "GetDelivery", err)
	checkDelivery(t, "GetDelivery", got, want)
	_, err = s.GetDelivery(ctx, first.ID+1000)
	wantErr(t, "GetDelivery unknown", err, domain.ErrNotFound)

	// One event once per webhook; the same event may go to another.
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateDelivery(ctx, newDelivery("wh_1", "ev-1", t0))
		return err
	})
	wantErr(t, "CreateDelivery of an event already queued", err, domain.ErrConflict)
	second := createDelivery(t, s, newDelivery("wh_2", "ev-1", t0.Add(time.Second)))
	third := createDelivery(t, s, newDelivery("wh_1", "ev-2", t0.Add(2*time.Second)))
	if !(first.ID < second.ID && second.ID < third.ID) {
		t.Errorf("delivery IDs %d, %d, %d do not ascend", first.ID, second.ID, third.ID)
	}

	// Due: pending and at or before now, the longest waiting first.
	due, err := s.DueDeliveries(ctx, t0.Add(time.Second), 10)
	must(t, "DueDeliveries", err)
	if ids := deliveryIDs(due); !reflect.DeepEqual(ids, []int64{first.ID, second.ID}) {
		t.Errorf("DueDeliveries at t0+1s: %v, want %v", ids, []int64{first.ID, second.ID})
	}
	// Of each webhook only the one due first.
	due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
	must(t, "DueDeliveries", err)
	if ids := deliveryIDs(due); !reflect.DeepEqual(ids, []int64{first.ID, second.ID}) {
		t.Errorf("DueDeliveries with two due for wh_1: %v, want %v", ids, []int64{first.ID, second.ID})
	}
	due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 1)
	must(t, "DueDeliveries", err)
	if ids := deliveryIDs(due); !reflect.DeepEqual(ids, []int64{first.ID}) {
		t.Errorf("DueDeliveries limit 1: %v", ids)
	}
	_, err = s.DueDeliveries(ctx, t0, 0)
	wantErr(t, "DueDeliveries limit 0", err, domain.ErrInvalid)

	// A retry later, then the end.
	retry := first
	retry.Attempts, retry.LastStatusCode, retry.LastError = 1, 503, "HTTP 503: busy"
	retry.NextAttemptAt, retry.UpdatedAt = t0.Add(time.Minute), t0.Add(time.Second)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, retry) })
	got, err = s.GetDelivery(ctx, first.ID)
	must(t, "GetDelivery after retry", err)
	checkDelivery(t, "after retry", got, retry)
	due, err = s.DueDeliveries(ctx, t0.Add(30*time.Second), 10)
	must(t, "DueDeliveries", err)
	if ids := deliveryIDs(due); !reflect.DeepEqual(ids, []int64{second.ID, third.ID}) {
		t.Errorf("DueDeliveries after a retry was scheduled: %v", ids)
	}
	done := retry
	done.Status, done.Attempts, done.LastStatusCode, done.LastError = domain.DeliveryDelivered, 2, 204, ""
	done.NextAttemptAt, done.UpdatedAt = time.Time{}, t0.Add(2*time.Minute)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, done) })
	got, err = s.GetDelivery(ctx, first.ID)
	must(t, "GetDelivery after delivery", err)
	checkDelivery(t, "after delivery", got, done)
	bad := done
	bad.Status = domain.DeliveryPending
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, bad) })
	wantErr(t, "UpdateDelivery pending without a time", err, domain.ErrInvalid)

	// Listing: newest first, filtered, paged.
	for _, tc := range []struct {
		f    store.DeliveryFilter
		want []int64
	}{
		{store.DeliveryFilter{}, []int64{third.ID, second.ID, first.ID}},
		{store.DeliveryFilter{WebhookID: "wh_1"}, []int64{third.ID, first.ID}},
		{store.DeliveryFilter{Status: domain.DeliveryDelivered}, []int64{first.ID}},
		{store.DeliveryFilter{WebhookID: "wh_2", Status: domain.DeliveryPending}, []int64{second.ID}},
		{store.DeliveryFilter{WebhookID: "wh_2", Status: domain.DeliveryFailed}, []int64{}},
	} {
		var ids []int64
		cursor := ""
		for pages := 0; ; pages++ {
			ds, next, err := s.ListDeliveries(ctx, tc.f, store.Page{Limit: 1, Cursor: cursor})
			must(t, fmt.Sprintf("ListDeliveries(%+v)", tc.f), err)
			ids = append(ids, deliveryIDs(ds)...)
			if next == "" {
				break
			}
			if pages > 5 {
				t.Fatal("ListDeliveries: the cursor does not advance")
			}
			cursor = next
		}
		if ids == nil {
			ids = []int64{}
		}
		if !reflect.DeepEqual(ids, tc.want) {
			t.Errorf("ListDeliveries(%+v): %v, want %v", tc.f, ids, tc.want)
		}
	}
	_, _, err = s.ListDeliveries(ctx, store.DeliveryFilter{}, store.Page{Cursor: "garbage!"})
	wantErr(t, "ListDeliveries bad cursor", err, domain.ErrInvalid)

	// Pruning takes ended deliveries older than the cut only.
	var pruned int
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		pruned, err = tx.PruneDeliveries(ctx, t0.Add(time.Minute))
		return err
	})
	if pruned != 0 {
		t.Errorf("PruneDeliveries before the delivery ended: %d pruned", pruned)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		pruned, err = tx.PruneDeliveries(ctx, t0.Add(time.Hour))
		return err
	})
	if pruned != 1 {
		t.Errorf("PruneDeliveries: %d pruned, want 1", pruned)
	}
	_, err = s.GetDelivery(ctx, first.ID)
	wantErr(t, "GetDelivery pruned", err, domain.ErrNotFound)
	// An ID is never reused.
	fourth := createDelivery(t, s, newDelivery("wh_1", "ev-4", t0))
	if fourth.ID <= third.ID {
		t.Errorf("delivery ID %d after %d", fourth.ID, third.ID)
	}

	// Deleting a webhook deletes its deliveries.
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh_1") })
	_, err = s.GetDelivery(ctx, third.ID)
	wantErr(t, "GetDelivery of a deleted webhook", err, domain.ErrNotFound)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, fourth) })
	wantErr(t, "UpdateDelivery of a deleted webhook", err, domain.ErrNotFound)
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{}, store.Page{})
	must(t, "ListDeliveries", err)
	if ids := deliveryIDs(ds); !reflect.DeepEqual(ids, []int64{second.ID}) {
		t.Errorf("deliveries after deleting wh_1: %v", ids)
	}

	// A delivery written in a transaction that rolls back is not stored.
	boom := errors.New("boom")
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.CreateDelivery(ctx, newDelivery("wh_2", "ev-rolled-back", t0)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	ds, _, err = s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: "wh_2"}, store.Page{})
	must(t, "ListDeliveries", err)
	if len(ds) != 1 {
		t.Errorf("a rolled back delivery was stored: %v", deliveryIDs(ds))
	}
}
