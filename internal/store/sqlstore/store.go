// Package sqlstore keeps slipway's state in a SQL database: SQLite on one
// machine (OpenSQLite) and PostgreSQL for replicas sharing state. The
// queries are shared (queries.go); a dialect holds the few differences
// (placeholders, how a write transaction takes the store's write lock,
// driver error codes); migrations are embedded per dialect under
// migrations/<dialect>/NNN_name.sql.
//
// It implements store.Store and passes storetest. It imports domain, audit,
// store and database drivers, and nothing that sits above the store.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/slipway-ml/slipway/internal/store"
)

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*tx)(nil)
)

// Store is a store.Store over database/sql. Writes go through a pool of one
// connection, so they queue in the process (honouring each caller's
// context) instead of spinning on the database lock; reads use their own
// pool and run concurrently with the writer.
type Store struct {
	reader
	writeDB *sql.DB
	readDB  *sql.DB
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader implements store.Reader for both the store and a transaction.
type reader struct {
	d *dialect
	// q runs single statements.
	q querier
	// snapshot runs fn where several statements must see one state: a
	// read-only transaction on the store, the write transaction in a Tx.
	snapshot func(ctx context.Context, fn func(q querier) error) error
}

func newStore(d *dialect, writeDB, readDB *sql.DB) *Store {
	s := &Store{writeDB: writeDB, readDB: readDB}
	s.reader = reader{d: d, q: readDB, snapshot: s.readSnapshot}
	return s
}

func (s *Store) readSnapshot(ctx context.Context, fn func(q querier) error) error {
	t, err := s.readDB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.d.wrap(err, "begin read transaction")
	}
	// A read-only transaction has nothing to commit; ending it either way
	// releases its snapshot.
	defer func() { _ = t.Rollback() }()
	return fn(t)
}

// DB returns the pool writes go through. It is for tests and tools that
// must reach under the store (the audit tamper tests edit rows with it);
// services never use it. The pool holds one connection: rows or a Conn
// kept open on it make Update wait.
func (s *Store) DB() *sql.DB { return s.writeDB }

// Update runs fn in one write transaction that holds the store's write lock
// from its first statement, and commits when fn returns nil. An error from
// fn, a panic in fn (which is re-raised) or a context ended before commit
// rolls every write back, audit entries included. fn's error is returned
// as is.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	sqlTx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return s.d.wrap(err, "begin write transaction")
	}
	done := false
	defer func() {
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	if s.d.lockWrites != "" {
		if _, err := sqlTx.ExecContext(ctx, s.d.lockWrites); err != nil {
			return s.d.wrap(err, "take the store's write lock")
		}
	}
	t := &tx{tx: sqlTx}
	t.reader = reader{d: s.d, q: sqlTx, snapshot: func(_ context.Context, fn func(querier) error) error {
		return fn(sqlTx)
	}}
	if err := fn(ctx, t); err != nil {
		return err
	}
	done = true
	if err := sqlTx.Commit(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// database/sql may have rolled back already and report only
			// that the transaction is done; the cause is the context.
			return fmt.Errorf("commit: %w", ctxErr)
		}
		return s.d.wrap(err, "commit")
	}
	return nil
}

// Ping reports whether the store can serve reads: it reads the audit head
// through the read pool. It does not queue behind a running write.
func (s *Store) Ping(ctx context.Context) error {
	var seq int64
	if err := s.readDB.QueryRowContext(ctx, s.d.rebind(qAuditHead)).Scan(&seq, new(string)); err != nil {
		return s.d.wrap(err, "ping "+s.d.name)
	}
	return nil
}

// Close closes both pools, waiting for statements already running.
func (s *Store) Close() error {
	return errors.Join(s.readDB.Close(), s.writeDB.Close())
}

// tx is the write side, bound to one database transaction.
type tx struct {
	reader
	tx *sql.Tx
}

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface {
	Scan(dest ...any) error
}

// queryAll runs a query and scans every row; want is how many rows are
// expected at most (0 when unknown), to size the result once.
func queryAll[T any](ctx context.Context, q querier, query string, args []any, want int, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	if want > 0 {
		out = make([]T, 0, want)
	}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// cutPage trims the extra row fetched to learn whether another page
// follows, and returns the cursor of the next page ("" on the last).
func cutPage[T any](items []T, limit int, kind string, key func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, encodeCursor(kind, key(items[limit-1]))
}
