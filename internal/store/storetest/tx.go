package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// checkNothingFrom fails when model exists or the audit head is not at
// wantSeq: what a rolled-back transaction wrote must be gone.
func checkNothingFrom(t *testing.T, s store.Store, model string, wantSeq int64, wantHash string) {
	t.Helper()
	_, err := s.GetModel(t.Context(), model)
	wantErr(t, "model written by a rolled-back transaction", err, domain.ErrNotFound)
	seq, hash, err := s.AuditHead(t.Context())
	must(t, "AuditHead", err)
	if seq != wantSeq || hash != wantHash {
		t.Errorf("audit head after a rolled-back transaction: %d %q, want %d %q", seq, hash, wantSeq, wantHash)
	}
	if n := int64(len(allAudit(t, s, store.AuditFilter{}, store.MaxLimit))); n != wantSeq {
		t.Errorf("%d audit entries after a rolled-back transaction, want %d", n, wantSeq)
	}
}

// writeModelAndAudit is the body of a transaction that goes wrong later.
func writeModelAndAudit(ctx context.Context, tx store.Tx, name string) error {
	if err := tx.CreateModel(ctx, domain.Model{Name: name, CreatedBy: "alice", CreatedAt: t0}); err != nil {
		return err
	}
	_, err := tx.AppendAudit(ctx, entry("alice", "model.create", "model/"+name))
	return err
}

func testRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := appendAudit(t, s, entry("alice", "setup", "model/base"))[0]

	errBoom := errors.New("boom")
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := writeModelAndAudit(ctx, tx, "doomed"); err != nil {
			return err
		}
		return fmt.Errorf("later step: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("Update returned %v, want fn's error", err)
	}
	checkNothingFrom(t, s, "doomed", base.Seq, base.Hash)

	// A store error inside fn rolls back what came before it too.
	createModel(t, s, "taken")
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := writeModelAndAudit(ctx, tx, "doomed-too"); err != nil {
			return err
		}
		return tx.CreateModel(ctx, domain.Model{Name: "taken", CreatedBy: "x", CreatedAt: t0})
	})
	wantErr(t, "Update creating a duplicate", err, domain.ErrConflict)
	checkNothingFrom(t, s, "doomed-too", base.Seq, base.Hash)

	// The chain continues from the last committed entry, without a gap.
	next := appendAudit(t, s, entry("alice", "after", "model/base"))[0]
	if next.Seq != base.Seq+1 || next.PrevHash != base.Hash {
		t.Errorf("entry after rollbacks: seq %d prev %s, want %d %s", next.Seq, next.PrevHash, base.Seq+1, base.Hash)
	}
	verifyAll(t, s)
}

func testPanic(t *testing.T, s store.Store) {
	base := appendAudit(t, s, entry("alice", "setup", "model/base"))[0]
	func() {
		defer func() {
			if r := recover(); r != "fn panicked" {
				t.Errorf("recovered %v, want fn's panic re-raised", r)
			}
		}()
		_ = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			if err := writeModelAndAudit(ctx, tx, "panicky"); err != nil {
				t.Errorf("write before panic: %v", err)
			}
			panic("fn panicked")
		})
	}()
	checkNothingFrom(t, s, "panicky", base.Seq, base.Hash)
	// The store still takes writes: the panic released the write lock.
	createModel(t, s, "after-panic")
}

func testIsolation(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := writeModelAndAudit(ctx, tx, "pending"); err != nil {
			return err
		}
		// Readers outside the transaction do not see it before commit.
		if _, err := s.GetModel(ctx, "pending"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("uncommitted model seen outside its transaction: %v", err)
		}
		if seq, _, err := s.AuditHead(ctx); err != nil || seq != 0 {
			t.Errorf("uncommitted audit head seen outside its transaction: %d, %v", seq, err)
		}
		// The transaction sees its own writes.
		if seq, _, err := tx.AuditHead(ctx); err != nil || seq != 1 {
			t.Errorf("AuditHead inside the transaction: %d, %v; want 1", seq, err)
		}
		return nil
	})
	if _, err := s.GetModel(t.Context(), "pending"); err != nil {
		t.Errorf("committed model: %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	const writers, each = 8, 12
	createModel(t, s, "busy")
	ctx := t.Context()

	var wg sync.WaitGroup
	errs := make(chan error, writers*each+writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					v, err := tx.CreateVersion(ctx, domain.Version{Model: "busy", Format: domain.FormatExternal, CreatedBy: "w", CreatedAt: t0})
					if err != nil {
						return err
					}
					_, err = tx.AppendAudit(ctx, entry(fmt.Sprintf("writer-%d", w), "version.create",
						fmt.Sprintf("model/busy/version/%d", v.Number)))
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d update %d: %w", w, i, err)
				}
			}
		})
	}
	// Readers run beside the writers.
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, _, err := s.ListVersions(ctx, "busy", store.VersionFilter{}, store.Page{}); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if _, _, err := s.AuditHead(ctx); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	const total = writers * each
	if n := verifyAll(t, s); n != total {
		t.Errorf("verified %d entries, want %d", n, total)
	}
	got := numbers(listAllVersions(t, s, "busy", store.VersionFilter{}, store.MaxLimit))
	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("concurrent versions numbered %v, want 1..%d", got, total)
	}
	// Every version was audited exactly once, by the writer that made it.
	seen := map[string]bool{}
	must(t, "ScanAudit", s.ScanAudit(ctx, func(e audit.Entry) error {
		if seen[e.Subject] {
			return fmt.Errorf("subject %s audited twice", e.Subject)
		}
		seen[e.Subject] = true
		return nil
	}))
	if len(seen) != total {
		t.Errorf("%d distinct audited versions, want %d", len(seen), total)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	// Canceled before it starts: fn never runs.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		called = true
		return writeModelAndAudit(ctx, tx, "never")
	})
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with a canceled context: err %v, fn called %v; want context.Canceled, not called", err, called)
	}
	checkNothingFrom(t, s, "never", 0, "")

	// Canceled while fn runs, fn ignoring it: the commit must not happen.
	ctx, cancel = context.WithCancel(t.Context())
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := writeModelAndAudit(ctx, tx, "abandoned"); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update canceled during fn: %v, want context.Canceled", err)
	}
	checkNothingFrom(t, s, "abandoned", 0, "")

	// The store is still usable.
	createModel(t, s, "after-cancel")
	appendAudit(t, s, entry("alice", "after", "model/after-cancel"))
	verifyAll(t, s)
}
