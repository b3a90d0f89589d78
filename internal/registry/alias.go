package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// SetAlias points an alias at a version, atomically. expected states what
// the alias must point at for the move to happen: nil means anything, 0
// means it must not exist yet, N means it must point at version N. When expected is given
// and the alias points elsewhere, the move fails with ErrConflict and
// nothing changes: of two racing moves with the same expectation exactly
// one wins.
func (r *Registry) SetAlias(ctx context.Context, actor, model, alias string, ref Ref, expected *int) (domain.Alias, error) {
	if err := domain.ValidateName("model", model); err != nil {
		return domain.Alias{}, err
	}
	if err := domain.ValidateName("alias", alias); err != nil {
		return domain.Alias{}, err
	}
	var out domain.Alias
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		v, err := lookup(ctx, tx, model, ref)
		if err != nil {
			return err
		}
		out, _, err = MoveAlias(ctx, tx, actor, r.clock.Now(), v, alias, expected)
		return err
	})
	return out, err
}

// MoveAlias points an alias at version v inside the caller's transaction,
// with its audit entry, under SetAlias's expectation rules; promotions
// move environment aliases with it. prev is the version the alias
// pointed at before (0 when it did not exist).
func MoveAlias(ctx context.Context, tx store.Tx, actor string, now time.Time, v domain.Version, alias string, expected *int) (a domain.Alias, prev int, err error) {
	model, n := v.Model, v.Number
	if v.State == domain.StateArchived {
		return a, 0, fmt.Errorf("version %d of model %q is archived; an alias may not point at it: %w", n, model, domain.ErrPrecondition)
	}
	cur, err := tx.GetAlias(ctx, model, alias)
	exists := err == nil
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return a, 0, err
	}
	if err := checkExpect(model, alias, cur, exists, expected); err != nil {
		return a, 0, err
	}
	if exists {
		prev = cur.Version
	}
	if exists && cur.Version == n {
		return cur, prev, nil
	}
	a = domain.Alias{Model: model, Name: alias, Version: n, UpdatedBy: actor, UpdatedAt: now}
	if err := tx.SetAlias(ctx, a); err != nil {
		return a, prev, err
	}
	var before any
	if exists {
		before = map[string]any{"version": cur.Version}
	}
	_, err = tx.AppendAudit(ctx, audit.Entry{
		Time: a.UpdatedAt, Actor: actor, Action: "alias.set",
		Subject: aliasSubject(model, alias),
		Before:  audit.Document(before),
		After:   audit.Document(map[string]any{"version": n}),
	})
	return a, prev, err
}

// DeleteAlias removes an alias, under the same expectation rules.
func (r *Registry) DeleteAlias(ctx context.Context, actor, model, alias string, expected *int) error {
	if err := domain.ValidateName("alias", alias); err != nil {
		return err
	}
	return r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		cur, err := tx.GetAlias(ctx, model, alias)
		if err != nil {
			return err
		}
		if err := checkExpect(model, alias, cur, true, expected); err != nil {
			return err
		}
		if err := tx.DeleteAlias(ctx, model, alias); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: r.clock.Now(), Actor: actor, Action: "alias.delete",
			Subject: aliasSubject(model, alias),
			Before:  audit.Document(map[string]any{"version": cur.Version}),
		})
		return err
	})
}

func checkExpect(model, alias string, cur domain.Alias, exists bool, expected *int) error {
	if expected == nil {
		return nil
	}
	want := *expected
	switch {
	case want < 0:
		return fmt.Errorf("expected version %d must be 0 (alias absent) or a version number: %w", want, domain.ErrInvalid)
	case want == 0 && exists:
		return fmt.Errorf("alias %q of model %q already points at version %d, expected it to be absent: %w", alias, model, cur.Version, domain.ErrConflict)
	case want > 0 && !exists:
		return fmt.Errorf("alias %q of model %q does not exist, expected it to point at version %d: %w", alias, model, want, domain.ErrConflict)
	case want > 0 && cur.Version != want:
		return fmt.Errorf("alias %q of model %q points at version %d, expected %d (someone moved it; re-read and retry): %w", alias, model, cur.Version, want, domain.ErrConflict)
	}
	return nil
}

// GetAlias returns one alias.
func (r *Registry) GetAlias(ctx context.Context, model, alias string) (domain.Alias, error) {
	if err := domain.ValidateName("alias", alias); err != nil {
		return domain.Alias{}, err
	}
	if _, err := r.GetModel(ctx, model); err != nil {
		return domain.Alias{}, err
	}
	return r.store.GetAlias(ctx, model, alias)
}

// ListAliases returns one page of a model's aliases in name order. A model
// has few aliases, so the store returns them all and the page is cut here.
func (r *Registry) ListAliases(ctx context.Context, model string, p store.Page) ([]domain.Alias, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", err
	}
	after := ""
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		name, ok := strings.CutPrefix(string(b), "alias:")
		if err != nil || !ok {
			return nil, "", fmt.Errorf("cursor %q is not one this listing gave out: %w", p.Cursor, domain.ErrInvalid)
		}
		after = name
	}
	if _, err := r.GetModel(ctx, model); err != nil {
		return nil, "", err
	}
	all, err := r.store.ListAliases(ctx, model)
	if err != nil {
		return nil, "", err
	}
	i := sort.Search(len(all), func(i int) bool { return all[i].Name > after })
	page := all[i:]
	if len(page) <= p.Limit {
		return page, "", nil
	}
	page = page[:p.Limit]
	return page, base64.RawURLEncoding.EncodeToString([]byte("alias:" + page[len(page)-1].Name)), nil
}
