package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// ListAudit returns entries in sequence order.
func (r *reader) ListAudit(ctx context.Context, f store.AuditFilter, p store.Page) ([]audit.Entry, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list audit entries: %w", err)
	}
	after, err := decodeSeqCursor(cursorAudit, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list audit entries: %w", err)
	}
	query, args := listAuditQuery(f, after, p.Limit+1)
	entries, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanEntry)
	if err != nil {
		return nil, "", r.d.wrap(err, "list audit entries")
	}
	entries, next := cutPage(entries, p.Limit, cursorAudit, func(e audit.Entry) string {
		return strconv.FormatInt(e.Seq, 10)
	})
	return entries, next, nil
}

// ScanAudit streams the whole log in sequence order, one row at a time.
// fn's error is returned as is, so a verifier's *audit.BreakError
// reaches the caller unwrapped.
func (r *reader) ScanAudit(ctx context.Context, fn func(audit.Entry) error) error {
	rows, err := r.q.QueryContext(ctx, r.d.rebind(qScanAudit))
	if err != nil {
		return r.d.wrap(err, "scan audit log")
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return r.d.wrap(err, "scan audit log")
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return r.d.wrap(rows.Err(), "scan audit log")
}

// AuditHead returns the recorded head of the chain, (0, "") when the log
// is empty.
func (r *reader) AuditHead(ctx context.Context) (int64, string, error) {
	return r.auditHead(ctx, r.q, qAuditHead)
}

func (r *reader) auditHead(ctx context.Context, q querier, query string) (int64, string, error) {
	var (
		seq  int64
		hash string
	)
	err := q.QueryRowContext(ctx, r.d.rebind(query)).Scan(&seq, &hash)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, "", errors.New("audit head: the head row is missing; the store was tampered with or not migrated")
		}
		return 0, "", r.d.wrap(err, "audit head")
	}
	if seq == 0 {
		return 0, "", nil
	}
	return seq, hash, nil
}

func scanEntry(s scanner) (audit.Entry, error) {
	var (
		e                 audit.Entry
		at, before, after string
	)
	err := s.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &before, &after, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, err
	}
	// A stored time that does not parse is left zero: the entry then fails
	// verification at its index instead of stopping the scan.
	e.Time, _ = parseTime(at)
	e.Before, e.After = json.RawMessage(before), json.RawMessage(after)
	return e, nil
}

// AppendAudit reads the head inside the write transaction, seals e after
// it, and stores the entry and the new head together.
func (t *tx) AppendAudit(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	seq, hash, err := t.auditHead(ctx, t.tx, t.d.auditHeadForUpdate)
	if err != nil {
		return audit.Entry{}, err
	}
	if seq == 0 {
		hash = audit.GenesisHash
	}
	sealed, err := audit.Seal(seq, hash, e)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("audit entry %q on %q: %v: %w", e.Action, e.Subject, err, domain.ErrInvalid)
	}
	_, err = t.tx.ExecContext(ctx, t.d.rebind(qInsertAudit),
		sealed.Seq, formatTime(sealed.Time), sealed.Actor, sealed.Action, sealed.Subject,
		string(sealed.Before), string(sealed.After), sealed.PrevHash, sealed.Hash)
	if err != nil {
		return audit.Entry{}, t.d.wrap(err, fmt.Sprintf("audit entry %d", sealed.Seq))
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qUpdateAuditHead), sealed.Seq, sealed.Hash); err != nil {
		return audit.Entry{}, t.d.wrap(err, "audit head")
	}
	return sealed, nil
}
