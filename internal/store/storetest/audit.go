package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// appendAudit appends entries in one transaction and returns them sealed.
func appendAudit(t *testing.T, s store.Store, entries ...audit.Entry) []audit.Entry {
	t.Helper()
	var sealed []audit.Entry
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, e := range entries {
			got, err := tx.AppendAudit(ctx, e)
			if err != nil {
				return err
			}
			sealed = append(sealed, got)
		}
		return nil
	})
	return sealed
}

func entry(actor, action, subject string) audit.Entry {
	return audit.Entry{Time: t0, Actor: actor, Action: action, Subject: subject, After: audit.Document(map[string]string{"subject": subject})}
}

func checkEntry(t *testing.T, what string, got, want audit.Entry) {
	t.Helper()
	checkTime(t, what+": time", got.Time, want.Time)
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// verifyAll runs the verifier over the whole log and its head.
func verifyAll(t *testing.T, r store.Reader) (n int64) {
	t.Helper()
	v := audit.NewVerifier()
	must(t, "ScanAudit with the verifier", r.ScanAudit(t.Context(), v.Next))
	seq, hash, err := r.AuditHead(t.Context())
	must(t, "AuditHead", err)
	must(t, "Verifier.Finish", v.Finish(seq, hash))
	return v.Checked()
}

// allAudit lists every entry matching f over pages of limit.
func allAudit(t *testing.T, r store.Reader, f store.AuditFilter, limit int) []audit.Entry {
	t.Helper()
	var all []audit.Entry
	cursor := ""
	for pages := 0; ; pages++ {
		es, next, err := r.ListAudit(t.Context(), f, store.Page{Limit: limit, Cursor: cursor})
		must(t, fmt.Sprintf("ListAudit(%+v)", f), err)
		all = append(all, es...)
		if next == "" {
			return all
		}
		if pages > 10_000 || len(es) == 0 {
			t.Fatalf("ListAudit(%+v): the cursor does not advance", f)
		}
		cursor = next
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := t.Context()
	seq, hash, err := s.AuditHead(ctx)
	must(t, "AuditHead of an empty log", err)
	if seq != 0 || hash != "" {
		t.Errorf("AuditHead of an empty log: %d %q, want 0 \"\"", seq, hash)
	}
	if es, next, err := s.ListAudit(ctx, store.AuditFilter{}, store.Page{}); err != nil || len(es) != 0 || next != "" {
		t.Errorf("ListAudit of an empty log: %d entries, next %q, err %v", len(es), next, err)
	}
	must(t, "ScanAudit of an empty log", s.ScanAudit(ctx, func(audit.Entry) error {
		return errors.New("called for an empty log")
	}))
	if n := verifyAll(t, s); n != 0 {
		t.Errorf("verified %d entries of an empty log", n)
	}

	// Documents are stored as sealed: compacted, absent ones as null.
	spaced := audit.Entry{
		Time: t0, Actor: "alice", Action: "model.create", Subject: "model/a",
		After: json.RawMessage("{ \"name\" : \"a\",\n  \"tags\": {\"x\": [1, 2.50, \"ü\"]} }"),
	}
	var sealed []audit.Entry
	sealed = append(sealed, appendAudit(t, s, spaced, entry("bob", "version.create", "model/a/version/1"))...)
	for i := range 3 {
		e := entry("carol", "alias.set", "model/a/alias/champion")
		e.Time = t0.Add(time.Duration(i) * time.Nanosecond)
		e.Before = audit.Document(domain.Alias{Model: "a", Name: "champion", Version: i})
		sealed = append(sealed, appendAudit(t, s, e)...)
	}

	if got := string(sealed[0].After); got != `{"name":"a","tags":{"x":[1,2.50,"ü"]}}` {
		t.Errorf("sealed after document: %s", got)
	}
	if got := string(sealed[0].Before); got != "null" {
		t.Errorf("absent before document sealed as %q, want null", got)
	}
	prev := audit.GenesisHash
	for i, e := range sealed {
		if e.Seq != int64(i+1) {
			t.Errorf("entry %d has seq %d", i+1, e.Seq)
		}
		if e.PrevHash != prev {
			t.Errorf("entry %d: prev hash %s, want %s", e.Seq, e.PrevHash, prev)
		}
		if h, err := audit.Hash(prev, e); err != nil || h != e.Hash {
			t.Errorf("entry %d: hash %s, recomputed %s (%v)", e.Seq, e.Hash, h, err)
		}
		prev = e.Hash
	}

	seq, hash, err = s.AuditHead(ctx)
	must(t, "AuditHead", err)
	if last := sealed[len(sealed)-1]; seq != last.Seq || hash != last.Hash {
		t.Errorf("AuditHead = %d %s, want %d %s", seq, hash, last.Seq, last.Hash)
	}

	listed := allAudit(t, s, store.AuditFilter{}, 2)
	if len(listed) != len(sealed) {
		t.Fatalf("ListAudit: %d entries, want %d", len(listed), len(sealed))
	}
	for i := range sealed {
		checkEntry(t, fmt.Sprintf("ListAudit entry %d", i+1), listed[i], sealed[i])
	}
	var scanned []audit.Entry
	must(t, "ScanAudit", s.ScanAudit(ctx, func(e audit.Entry) error {
		scanned = append(scanned, e)
		return nil
	}))
	if len(scanned) != len(sealed) {
		t.Fatalf("ScanAudit: %d entries, want %d", len(scanned), len(sealed))
	}
	for i := range sealed {
		checkEntry(t, fmt.Sprintf("ScanAudit entry %d", i+1), scanned[i], sealed[i])
	}
	if n := verifyAll(t, s); n != int64(len(sealed)) {
		t.Errorf("verified %d entries, want %d", n, len(sealed))
	}

	// ScanAudit stops at fn's first error and returns it unchanged.
	errStop := errors.New("stop here")
	calls := 0
	err = s.ScanAudit(ctx, func(audit.Entry) error { calls++; return errStop })
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("ScanAudit with a failing fn: err %v after %d calls, want errStop after 1", err, calls)
	}

	// A malformed document is refused and appends nothing.
	bad := entry("mallory", "model.create", "model/x")
	bad.After = json.RawMessage(`{"unterminated": `)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.AppendAudit(ctx, bad)
		return err
	})
	if err == nil {
		t.Error("AppendAudit with malformed JSON succeeded")
	}
	if seq, _, _ := s.AuditHead(ctx); seq != int64(len(sealed)) {
		t.Errorf("head moved to %d after a refused entry", seq)
	}

	_, _, err = s.ListAudit(ctx, store.AuditFilter{}, store.Page{Cursor: "!"})
	wantErr(t, "ListAudit bad cursor", err, domain.ErrInvalid)
	_, _, err = s.ListAudit(ctx, store.AuditFilter{}, store.Page{Limit: store.MaxLimit + 1})
	wantErr(t, "ListAudit bad limit", err, domain.ErrInvalid)
}

func testAuditFilters(t *testing.T, s store.Store) {
	subjects := []struct{ actor, subject string }{
		{"alice", "model/a"},                // 1
		{"bob", "model/a/version/1"},        // 2
		{"alice", "model/ab"},               // 3
		{"bob", "model/a/alias/champion"},   // 4
		{"alice", "model/a_b"},              // 5
		{"alice", "model/axb/version/1"},    // 6
		{"carol", "token/x"},                // 7
		{"alice", "model/b"},                // 8
		{"bob", "model%"},                   // 9
		{"bob", "model/a/version/10"},       // 10
		{"alice", "model/a.b"},              // 11
		{"alice", "model/a/version/1/eval"}, // 12
	}
	var entries []audit.Entry
	for _, e := range subjects {
		entries = append(entries, entry(e.actor, "test", e.subject))
	}
	appendAudit(t, s, entries...)

	cases := []struct {
		f    store.AuditFilter
		want []int64
	}{
		{store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{store.AuditFilter{Subject: "model/a"}, []int64{1, 2, 4, 10, 12}},
		{store.AuditFilter{Subject: "model/a/version/1"}, []int64{2, 12}},
		{store.AuditFilter{Subject: "model/a_b"}, []int64{5}},
		{store.AuditFilter{Subject: "model/a.b"}, []int64{11}},
		{store.AuditFilter{Subject: "model"}, []int64{1, 2, 3, 4, 5, 6, 8, 10, 11, 12}},
		{store.AuditFilter{Subject: "model%"}, []int64{9}},
		{store.AuditFilter{Subject: "mod"}, []int64{}},
		{store.AuditFilter{Subject: "model/"}, []int64{}},
		{store.AuditFilter{Subject: "token"}, []int64{7}},
		{store.AuditFilter{Subject: "nothing"}, []int64{}},
		{store.AuditFilter{Actor: "bob"}, []int64{2, 4, 9, 10}},
		{store.AuditFilter{Actor: "bo"}, []int64{}},
		{store.AuditFilter{Actor: "bob", Subject: "model/a"}, []int64{2, 4, 10}},
		{store.AuditFilter{Actor: "carol", Subject: "model"}, []int64{}},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 3, store.MaxLimit} {
			var got []int64
			for _, e := range allAudit(t, s, c.f, limit) {
				got = append(got, e.Seq)
				if c.f.Actor != "" && e.Actor != c.f.Actor {
					t.Errorf("ListAudit(%+v) returned an entry by %q", c.f, e.Actor)
				}
			}
			if got == nil {
				got = []int64{}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListAudit(%+v) over pages of %d: %v, want %v", c.f, limit, got, c.want)
			}
		}
	}
	// Filtering never changes what an entry holds.
	for _, e := range allAudit(t, s, store.AuditFilter{Subject: "token"}, 10) {
		if !bytes.Equal(e.After, entries[6].After) || e.Hash == "" {
			t.Errorf("filtered entry %d: %+v", e.Seq, e)
		}
	}
}
