package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// Tokens manages API tokens and records every change in the audit log.
type Tokens struct {
	store store.Store
	clock clock.Clock
}

// NewTokens returns the token service.
func NewTokens(s store.Store, c clock.Clock) *Tokens {
	if c == nil {
		c = clock.Real{}
	}
	return &Tokens{store: s, clock: c}
}

func tokenSubject(name string) string { return "token/" + name }

// Create mints and stores a token. The plain secret is in the result and
// nowhere else: it cannot be shown again.
func (t *Tokens) Create(ctx context.Context, actor, name string, role domain.Role) (Secret, error) {
	sec, err := Mint(name, role, actor, t.clock.Now())
	if err != nil {
		return Secret{}, err
	}
	err = t.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateToken(ctx, sec.Token); err != nil {
			return fmt.Errorf("token %q: %w", name, err)
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: sec.Token.CreatedAt, Actor: actor, Action: "token.create",
			Subject: tokenSubject(name), After: audit.Document(sec.Token),
		})
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	return sec, nil
}

// List returns one page of tokens (never their secrets).
func (t *Tokens) List(ctx context.Context, p store.Page) ([]domain.Token, string, error) {
	return t.store.ListTokens(ctx, p)
}

// Revoke revokes a token by name; a revoked token fails every call after.
func (t *Tokens) Revoke(ctx context.Context, actor, name string) (domain.Token, error) {
	if err := domain.ValidateName("token", name); err != nil {
		return domain.Token{}, err
	}
	var out domain.Token
	err := t.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		tok, err := tx.GetTokenByName(ctx, name)
		if err != nil {
			return err
		}
		if tok.RevokedAt != nil {
			return fmt.Errorf("token %q is already revoked: %w", name, domain.ErrPrecondition)
		}
		if tok.Role == domain.RoleAdmin {
			if err := otherActiveAdmin(ctx, tx, tok.ID); err != nil {
				return err
			}
		}
		now := t.clock.Now()
		if err := tx.RevokeToken(ctx, tok.ID, now); err != nil {
			return err
		}
		before := tok
		tok.RevokedAt = &now
		out = tok
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: now, Actor: actor, Action: "token.revoke",
			Subject: tokenSubject(name), Before: audit.Document(before), After: audit.Document(tok),
		})
		return err
	})
	return out, err
}

// Bootstrap creates the first admin token when the store holds none and
// writes it to dataDir/admin.token with mode 0600. It returns the file's
// path when it created one, "" otherwise. The token itself is never logged.
// The file is written before the token is stored, so a crash in between
// leaves no token nobody can read; the next start simply mints another.
func (t *Tokens) Bootstrap(ctx context.Context, dataDir string) (string, error) {
	toks, _, err := t.store.ListTokens(ctx, store.Page{Limit: 1})
	if err != nil {
		return "", err
	}
	if len(toks) > 0 {
		return "", nil
	}
	sec, err := Mint("admin", domain.RoleAdmin, "system", t.clock.Now())
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "admin.token")
	if err := writeSecretFile(path, sec.Plain+"\n"); err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	err = t.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateToken(ctx, sec.Token); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: sec.Token.CreatedAt, Actor: "system", Action: "token.create",
			Subject: tokenSubject(sec.Token.Name), After: audit.Document(sec.Token),
		})
		return err
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

func writeSecretFile(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// otherActiveAdmin refuses to revoke the last admin: nobody could mint or
// revoke tokens after it, and the server only bootstraps an empty store.
func otherActiveAdmin(ctx context.Context, r store.Reader, except string) error {
	p := store.Page{Limit: store.MaxLimit}
	for {
		toks, next, err := r.ListTokens(ctx, p)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.ID != except && t.Role == domain.RoleAdmin && t.RevokedAt == nil {
				return nil
			}
		}
		if next == "" {
			return fmt.Errorf("this is the last active admin token; create another admin token before revoking it: %w", domain.ErrPrecondition)
		}
		p.Cursor = next
	}
}
