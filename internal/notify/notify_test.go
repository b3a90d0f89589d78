package notify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func TestSubscribed(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		typ      string
		want     bool
	}{
		{[]string{"promotion.approved"}, "promotion.approved", true},
		{[]string{"promotion.approved"}, "promotion.rejected", false},
		{[]string{"promotion.*"}, "promotion.rejected", true},
		{[]string{"promotion.*"}, "promotional.x", false},
		{[]string{"promo*"}, "promotion.approved", false},
		{[]string{"*"}, "promotion.completed", true},
		{[]string{"rollout.*", "promotion.completed"}, "promotion.completed", true},
		{nil, "promotion.completed", false},
	} {
		if got := Subscribed(tc.patterns, tc.typ); got != tc.want {
			t.Errorf("Subscribed(%q, %q) = %v, want %v", tc.patterns, tc.typ, got, tc.want)
		}
	}
}

func TestParsePatterns(t *testing.T) {
	got, err := ParsePatterns([]string{"promotion.rejected", "promotion.approved", "promotion.rejected", "*", "promotion.*"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*", "promotion.*", "promotion.approved", "promotion.rejected"}; !slices.Equal(got, want) {
		t.Errorf("ParsePatterns = %q, want %q", got, want)
	}
	for _, bad := range [][]string{
		nil, {}, {""}, {"promotion.aproved"}, {"promotion"}, {"promo.*"}, {".*"}, {"**"}, {"promotion.approved", "webhook.ping"},
		{"PROMOTION.APPROVED"}, {"promotion.approved "}, {strings.Repeat("a", 10_000)},
	} {
		_, err := ParsePatterns(bad)
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ParsePatterns(%.60q): %v, want ErrInvalid", bad, err)
		}
	}
	_, err = ParsePatterns([]string{"promotion.aproved"})
	if err == nil || !strings.Contains(err.Error(), "promotion.approved") || !strings.Contains(err.Error(), "promotion.*") {
		t.Errorf("a misspelt event's error does not list what exists: %v", err)
	}
}

// A change that commits notifies every subscribed webhook once; one that
// rolls back notifies nobody.
func TestEnqueueOnlyWhenCommitted(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{})
	ctx := t.Context()
	exact := f.add("http://127.0.0.1:1/exact", TypePromotionApproved)
	family := f.add("http://127.0.0.1:1/family", "promotion.*")
	all := f.add("http://127.0.0.1:1/all", "*")
	other := f.add("http://127.0.0.1:1/other", TypePromotionRejected)

	boom := errors.New("the promotion failed after the event was raised")
	err := f.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := Enqueue(ctx, tx, approved); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if ds := f.deliveries(""); len(ds) != 0 {
		t.Fatalf("a rolled back change queued %d deliveries", len(ds))
	}

	ev := approved
	ev.ID = "ev-1"
	f.enqueue(ev)
	for _, w := range []domain.Webhook{exact, family, all} {
		d := f.only(w.ID)
		if d.EventID != "ev-1" || d.EventType != TypePromotionApproved || d.Subject != approved.Subject ||
			d.Status != domain.DeliveryPending || d.Attempts != 0 || !d.NextAttemptAt.Equal(t0) ||
			string(d.Data) != `{"environment":"production","model":"fraud","version":3}` {
			t.Errorf("delivery to %s: %+v (data %s)", w.URL, d, d.Data)
		}
	}
	if ds := f.deliveries(other.ID); len(ds) != 0 {
		t.Errorf("a webhook of promotion.rejected got %d deliveries of promotion.approved", len(ds))
	}

	// The same event twice is refused, not sent twice.
	err = f.store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return Enqueue(ctx, tx, ev) })
	if !errors.Is(err, domain.ErrConflict) {
		t.Errorf("Enqueue of the same event ID again: %v, want ErrConflict", err)
	}

	// An event without an ID gets a fresh one.
	f.enqueue(Event{Type: TypePromotionRejected, Data: nil})
	d := f.only(other.ID)
	if len(d.EventID) != 36 || d.EventID[14] != '4' || string(d.Data) != "null" {
		t.Errorf("generated event: id %q, data %s", d.EventID, d.Data)
	}
}

func TestEnqueueRefusesBadEvents(t *testing.T) {
	f := newFixture(t, nil, DispatcherConfig{})
	f.add("http://127.0.0.1:1/all", "*")
	for name, ev := range map[string]Event{
		"unknown type":      {Type: "promotion.exploded"},
		"no type":           {},
		"a ping":            {Type: TypePing},
		"data not JSON":     {Type: TypePromotionApproved, Data: func() {}},
		"data too big":      {Type: TypePromotionApproved, Data: strings.Repeat("x", MaxDataBytes)},
		"id with a space":   {Type: TypePromotionApproved, ID: "a b"},
		"huge subject":      {Type: TypePromotionApproved, Subject: strings.Repeat("s", 2000)},
		"id far too long":   {Type: TypePromotionApproved, ID: strings.Repeat("i", 200)},
		"id not ASCII text": {Type: TypePromotionApproved, ID: "é"},
	} {
		err := f.store.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return Enqueue(ctx, tx, ev) })
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Enqueue of an event with %s: %v, want ErrInvalid", name, err)
		}
	}
	if ds := f.deliveries(""); len(ds) != 0 {
		t.Errorf("refused events queued %d deliveries", len(ds))
	}
}
