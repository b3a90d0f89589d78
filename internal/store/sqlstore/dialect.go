package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// dialect is everything that differs between databases. It is kept small on
// purpose: the queries in queries.go are shared, written with '?'
// placeholders, and rebound here for databases that number them.
//
// PostgreSQL (postgres.go, to come) is expected to set numbered, lockWrites
// to "SELECT pg_advisory_xact_lock(<constant>)" so writes serialise across
// replicas as they do in SQLite, auditHeadForUpdate to qAuditHead + " FOR
// UPDATE", and classify on pgconn.PgError codes 23505 (unique), 23503
// (foreign key), 23514 and 23502 (check, not null), 55P03 and 40001
// (busy). Its migrations must declare audit_entries.subject COLLATE "C"
// for the subject range in listAuditQuery.
type dialect struct {
	name string
	// numbered rewrites '?' placeholders as $1, $2 … (PostgreSQL).
	numbered bool
	// lockWrites runs first in every write transaction to take the store's
	// write lock; empty when BEGIN already takes it (SQLite's BEGIN
	// IMMEDIATE). PostgreSQL will use a transaction-scoped advisory lock.
	lockWrites string
	// auditHeadForUpdate reads the audit head inside a write transaction;
	// PostgreSQL appends FOR UPDATE.
	auditHeadForUpdate string
	// classify sorts a driver error into the few kinds the store maps to
	// domain errors.
	classify func(error) errKind
}

// errKind is a driver error's meaning for the store.
type errKind int

const (
	kindOther      errKind = iota
	kindUnique             // unique or primary key violation
	kindForeignKey         // foreign key violation
	kindCheck              // check or not-null violation: a malformed value
	kindBusy               // the database is locked or overloaded
)

// rebind rewrites the '?' placeholders of query for the dialect. Question
// marks inside quoted strings or identifiers are left alone.
func (d *dialect) rebind(query string) string {
	if !d.numbered || !strings.Contains(query, "?") {
		return query
	}
	return rebindNumbered(query)
}

// rebindNumbered turns each '?' outside quotes into $1, $2 ….
func rebindNumbered(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// wrap translates a driver error into a domain error naming the thing
// (what): no rows and foreign key violations become ErrNotFound (the thing,
// or the thing it refers to, does not exist), unique violations
// ErrConflict, check violations ErrInvalid, lock timeouts ErrUnavailable.
// Context errors and anything else keep their own chain.
func (d *dialect) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, domain.ErrNotFound)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch d.classify(err) {
	case kindUnique:
		return fmt.Errorf("%s already exists: %w", what, domain.ErrConflict)
	case kindForeignKey:
		return fmt.Errorf("%s: %w", what, domain.ErrNotFound)
	case kindCheck:
		return fmt.Errorf("%s: %v: %w", what, err, domain.ErrInvalid)
	case kindBusy:
		return fmt.Errorf("%s: %s database is busy: %v: %w", what, d.name, err, domain.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", what, err)
}
