package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// GetToken returns ErrNotFound when no token has the ID.
func (r *reader) GetToken(ctx context.Context, id string) (domain.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, r.d.rebind(qGetToken), id))
	if err != nil {
		return domain.Token{}, r.d.wrap(err, fmt.Sprintf("token id %q", id))
	}
	return t, nil
}

// GetTokenByName returns ErrNotFound when no token has the name.
func (r *reader) GetTokenByName(ctx context.Context, name string) (domain.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, r.d.rebind(qGetTokenByName), name))
	if err != nil {
		return domain.Token{}, r.d.wrap(err, fmt.Sprintf("token %q", name))
	}
	return t, nil
}

// ListTokens returns tokens in name order, revoked ones included.
func (r *reader) ListTokens(ctx context.Context, p store.Page) ([]domain.Token, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", err)
	}
	after, err := decodeCursor(cursorToken, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", err)
	}
	tokens, err := queryAll(ctx, r.q, r.d.rebind(qListTokens), []any{after, p.Limit + 1}, p.Limit+1, scanToken)
	if err != nil {
		return nil, "", r.d.wrap(err, "list tokens")
	}
	tokens, next := cutPage(tokens, p.Limit, cursorToken, func(t domain.Token) string { return t.Name })
	return tokens, next, nil
}

func scanToken(s scanner) (domain.Token, error) {
	var (
		t             domain.Token
		role, created string
		revoked       sql.NullString
	)
	if err := s.Scan(&t.ID, &t.Name, &role, &t.Hash, &t.CreatedBy, &created, &revoked); err != nil {
		return t, err
	}
	t.Role = domain.Role(role)
	if len(t.Hash) == 0 {
		t.Hash = nil
	}
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return t, fmt.Errorf("token %q: created at: %w", t.Name, err)
	}
	if revoked.Valid {
		at, err := parseTime(revoked.String)
		if err != nil {
			return t, fmt.Errorf("token %q: revoked at: %w", t.Name, err)
		}
		t.RevokedAt = &at
	}
	return t, nil
}

// CreateToken returns ErrConflict when the name or the ID is taken.
func (t *tx) CreateToken(ctx context.Context, tok domain.Token) error {
	hash := tok.Hash
	if hash == nil {
		hash = []byte{}
	}
	var revoked sql.NullString
	if tok.RevokedAt != nil {
		revoked = sql.NullString{String: formatTime(*tok.RevokedAt), Valid: true}
	}
	_, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertToken),
		tok.ID, tok.Name, string(tok.Role), hash, tok.CreatedBy, formatTime(tok.CreatedAt), revoked)
	return t.d.wrap(err, fmt.Sprintf("token %q (id %q)", tok.Name, tok.ID))
}

// RevokeToken marks a token revoked at the given time. It returns
// ErrNotFound when no token has the ID, and ErrPrecondition when the token
// is already revoked: the first revocation time stands, and the caller
// learns that this call changed nothing (so it need not audit it).
func (t *tx) RevokeToken(ctx context.Context, id string, at time.Time) error {
	what := fmt.Sprintf("token id %q", id)
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qRevokeToken), formatTime(at), id)
	if err != nil {
		return t.d.wrap(err, what)
	}
	if err := mustAffect(res, what); !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	var revoked sql.NullString
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qTokenRevokedAt), id).Scan(&revoked); err != nil {
		return t.d.wrap(err, what)
	}
	return fmt.Errorf("%s was already revoked at %s: %w", what, revoked.String, domain.ErrPrecondition)
}
