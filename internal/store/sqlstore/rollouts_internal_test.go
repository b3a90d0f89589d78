package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// activePhases must list exactly the phases the domain calls active, in
// the text the partial index of 010_rollouts.sql uses.
func TestActivePhasesMatchTheDomain(t *testing.T) {
	var quoted []string
	for _, p := range domain.RolloutPhases {
		if !p.Terminal() {
			quoted = append(quoted, "'"+string(p)+"'")
		}
	}
	if want := "(" + strings.Join(quoted, ", ") + ")"; activePhases != want {
		t.Fatalf("activePhases = %s, want %s", activePhases, want)
	}
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.name == "rollouts" && !strings.Contains(m.sql, "WHERE phase IN "+activePhases) {
			t.Fatalf("010_rollouts.sql's partial index does not read WHERE phase IN %s", activePhases)
		}
	}
}

// The database itself holds the rules the store checks first, so a writer
// that skips the checks (another process, a bug) cannot break them: one
// active rollout per model and environment, identity and revision steps,
// ended rollouts frozen once in effect, no deletes.
func TestRolloutRulesHeldByTheDatabase(t *testing.T) {
	s := openInternal(t, filepath.Join(t.TempDir(), "r.db"))
	ctx := t.Context()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateModel(ctx, domain.Model{Name: "m", CreatedBy: "a"}); err != nil {
			return err
		}
		for range 2 {
			if _, err := tx.CreateVersion(ctx, domain.Version{Model: "m", Format: domain.FormatExternal, CreatedBy: "a"}); err != nil {
				return err
			}
		}
		_, err := tx.CreateRollout(ctx, domain.Rollout{Model: "m", Environment: "production", Baseline: 1, Candidate: 2,
			Phase: domain.RolloutPending, Traffic: domain.RolloutTraffic{Baseline: 100}, InEffect: true, CreatedBy: "a"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	insert := func(id int, phase string) error {
		_, err := db.ExecContext(ctx, `INSERT INTO rollouts (`+rolloutCols+`) VALUES (?, 'm', 'production', 1, 2, ?, 1, 1, '', '{}', 'a', '', '')`, id, phase)
		return err
	}
	if err := insert(2, "paused"); err == nil || sqliteDialect.classify(err) != kindUnique {
		t.Errorf("a second active rollout: %v, want a unique violation", err)
	}
	if err := insert(2, "aborted"); err != nil {
		t.Errorf("an ended rollout beside the active one: %v", err)
	}
	for _, tc := range []struct{ what, sql string }{
		{"changing the model", `UPDATE rollouts SET model = 'n', revision = revision + 1 WHERE id = 1`},
		{"changing the spec", `UPDATE rollouts SET spec = 'x', revision = revision + 1 WHERE id = 1`},
		{"keeping the revision", `UPDATE rollouts SET phase = 'paused' WHERE id = 1`},
		{"skipping a revision", `UPDATE rollouts SET phase = 'paused', revision = revision + 2 WHERE id = 1`},
		{"changing an ended rollout in effect", `UPDATE rollouts SET doc = '{"reason":"x"}', revision = revision + 1 WHERE id = 2`},
		{"reopening an ended rollout", `UPDATE rollouts SET phase = 'paused', revision = revision + 1 WHERE id = 2`},
		{"deleting", `DELETE FROM rollouts WHERE id = 2`},
	} {
		if _, err := db.ExecContext(ctx, tc.sql); err == nil {
			t.Errorf("%s: the database allowed it", tc.what)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE rollouts SET phase = 'rolled_back', in_effect = 0, revision = revision + 1 WHERE id = 1`); err != nil {
		t.Fatalf("ending a rollout: %v", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE rollouts SET in_effect = 1, revision = revision + 1 WHERE id = 1`); err != nil {
		t.Errorf("marking an ended rollout in effect: %v", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE rollouts SET in_effect = 1, revision = revision + 1 WHERE id = 1`); err == nil {
		t.Errorf("a second write to an ended rollout in effect: the database allowed it")
	}
}
