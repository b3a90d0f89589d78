package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlstore"
)

const tamperEntries = 6

// seedAudit appends tamperEntries entries, then drops the append-only
// triggers as an attacker with file access would.
func seedAudit(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := openTemp(t)
	for i := 1; i <= tamperEntries; i++ {
		err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.AppendAudit(ctx, audit.Entry{
				Actor: fmt.Sprintf("actor-%d", i), Action: "model.create", Subject: fmt.Sprintf("model/m%d", i),
				After: audit.Document(map[string]int{"i": i}),
			})
			return err
		})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	for _, trg := range []string{"audit_entries_no_update", "audit_entries_no_delete"} {
		if _, err := s.DB().ExecContext(t.Context(), "DROP TRIGGER "+trg); err != nil {
			t.Fatalf("drop trigger %s: %v", trg, err)
		}
	}
	return s
}

// verify runs the verifier over ScanAudit and AuditHead as `slipway audit
// verify` does, and returns where the chain breaks (0 when it holds).
func verify(t *testing.T, s store.Reader) (int64, error) {
	t.Helper()
	v := audit.NewVerifier()
	err := s.ScanAudit(t.Context(), v.Next)
	if err == nil {
		seq, hash, herr := s.AuditHead(t.Context())
		if herr != nil {
			t.Fatalf("AuditHead: %v", herr)
		}
		err = v.Finish(seq, hash)
	}
	if err == nil {
		return 0, nil
	}
	var be *audit.BreakError
	if !errors.As(err, &be) {
		t.Fatalf("verify: %v is not a *audit.BreakError", err)
	}
	return be.Index, err
}

func exec(db *sql.DB, query string, args ...any) error {
	_, err := db.ExecContext(context.Background(), query, args...)
	return err
}

// swapRows exchanges every column but seq between rows i and j.
func swapRows(db *sql.DB, i, j int64) error {
	const cols = `time, actor, action, subject, before, after, prev_hash, hash`
	read := func(seq int64) ([]any, error) {
		vals := make([]any, 8)
		ptrs := make([]any, 8)
		for k := range vals {
			ptrs[k] = &vals[k]
		}
		err := db.QueryRow(`SELECT `+cols+` FROM audit_entries WHERE seq = ?`, seq).Scan(ptrs...)
		return vals, err
	}
	write := func(seq int64, vals []any) error {
		return exec(db, `UPDATE audit_entries SET (`+cols+`) = (?, ?, ?, ?, ?, ?, ?, ?) WHERE seq = ?`, append(vals, seq)...)
	}
	a, err := read(i)
	if err != nil {
		return err
	}
	b, err := read(j)
	if err != nil {
		return err
	}
	if err := write(i, b); err != nil {
		return err
	}
	return write(j, a)
}

// rehash edits row seq's actor and recomputes its own hash, as an attacker
// who knows the scheme would: the next row's previous hash then breaks.
func rehash(s *sqlstore.Store, seq int64) error {
	var target audit.Entry
	err := s.ScanAudit(context.Background(), func(e audit.Entry) error {
		if e.Seq == seq {
			target = e
		}
		return nil
	})
	if err != nil {
		return err
	}
	target.Actor = "mallory"
	h, err := audit.Hash(target.PrevHash, target)
	if err != nil {
		return err
	}
	return exec(s.DB(), `UPDATE audit_entries SET actor = ?, hash = ? WHERE seq = ?`, target.Actor, h, seq)
}

func TestAuditTamper(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(s *sqlstore.Store) error
		want   int64
	}{
		{"untouched", func(*sqlstore.Store) error { return nil }, 0},
		{"edit a row's actor", func(s *sqlstore.Store) error {
			return exec(s.DB(), `UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3`)
		}, 3},
		{"edit a row's time", func(s *sqlstore.Store) error {
			return exec(s.DB(), `UPDATE audit_entries SET time = '2001-01-01T00:00:00.000000000Z' WHERE seq = 2`)
		}, 2},
		{"edit a row's after document", func(s *sqlstore.Store) error {
			return exec(s.DB(), `UPDATE audit_entries SET after = '{"i":99}' WHERE seq = 5`)
		}, 5},
		{"edit a row and recompute its hash", func(s *sqlstore.Store) error { return rehash(s, 3) }, 4},
		{"delete a middle row", func(s *sqlstore.Store) error {
			return exec(s.DB(), `DELETE FROM audit_entries WHERE seq = 4`)
		}, 4},
		{"swap two rows", func(s *sqlstore.Store) error { return swapRows(s.DB(), 2, 5) }, 2},
		{"delete the last row", func(s *sqlstore.Store) error {
			return exec(s.DB(), `DELETE FROM audit_entries WHERE seq = ?`, tamperEntries)
		}, tamperEntries},
		{"delete the last row and roll the head back", func(s *sqlstore.Store) error {
			if err := exec(s.DB(), `DELETE FROM audit_entries WHERE seq = ?`, tamperEntries); err != nil {
				return err
			}
			return exec(s.DB(), `UPDATE audit_head SET seq = seq - 1`)
		}, tamperEntries - 1},
		{"edit the head's hash", func(s *sqlstore.Store) error {
			return exec(s.DB(), `UPDATE audit_head SET hash = ?`, audit.GenesisHash)
		}, tamperEntries},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := seedAudit(t)
			if err := c.tamper(s); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			got, err := verify(t, s)
			if got != c.want {
				t.Errorf("chain breaks at %d (%v), want %d", got, err, c.want)
			}
		})
	}
}

// The append-only triggers refuse edits made through SQL without first
// dropping them.
func TestAuditTriggers(t *testing.T) {
	s := openTemp(t)
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.AppendAudit(ctx, audit.Entry{Actor: "a", Action: "x", Subject: "y"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := exec(s.DB(), `UPDATE audit_entries SET actor = 'mallory'`); err == nil {
		t.Error("UPDATE of an audit entry succeeded")
	}
	if err := exec(s.DB(), `DELETE FROM audit_entries`); err == nil {
		t.Error("DELETE of an audit entry succeeded")
	}
	if got, err := verify(t, s); got != 0 {
		t.Errorf("chain breaks at %d: %v", got, err)
	}
}
