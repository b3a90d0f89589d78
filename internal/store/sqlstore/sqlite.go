package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/slipway-ml/slipway/internal/domain"
)

// sqliteDialect: BEGIN IMMEDIATE (from the DSN) takes the write lock, so
// writes need no extra statement, and reading the audit head needs no
// row lock.
var sqliteDialect = &dialect{
	name:               "sqlite",
	auditHeadForUpdate: qAuditHead,
	classify:           classifySQLite,
}

// sqliteBusyTimeoutMS bounds how long a statement waits for a lock held by
// another process before failing with ErrUnavailable. Writers of this
// process queue on the one-connection write pool instead.
const sqliteBusyTimeoutMS = 10_000

// OpenSQLite opens (creating it if needed) the SQLite database at path and
// brings its schema up to date. Every connection runs in WAL mode with
// synchronous=FULL, so a committed write survives a power cut, and with
// foreign keys enforced; write transactions begin IMMEDIATE, taking the
// database's write lock at BEGIN. path must name a file: an in-memory
// database would not be shared between the read and write pools.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite path %q must be a file path without '?' or '#': %w", path, domain.ErrInvalid)
	}
	writeDB, err := openSQLitePool(path, 1, url.Values{"_txlock": {"immediate"}})
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, writeDB, sqliteDialect, sqliteMigrations); err != nil {
		writeDB.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	readDB, err := openSQLitePool(path, readers, url.Values{"_pragma": {"query_only(1)"}})
	if err != nil {
		writeDB.Close()
		return nil, err
	}
	s := newStore(sqliteDialect, writeDB, readDB)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return s, nil
}

// openSQLitePool opens a pool whose every connection gets the store's
// pragmas (modernc runs _pragma values on each new connection) plus extra.
func openSQLitePool(path string, conns int, extra url.Values) (*sql.DB, error) {
	q := url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS),
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(ON)",
	}}
	for k, vs := range extra {
		q[k] = append(q[k], vs...)
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Keep every connection open: each new one re-runs the pragmas and
	// starts with a cold page cache.
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// classifySQLite reads modernc's extended result codes.
func classifySQLite(err error) errKind {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return kindOther
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return kindUnique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return kindForeignKey
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_DATATYPE:
		return kindCheck
	}
	switch se.Code() & 0xff { // the primary code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return kindBusy
	}
	return kindOther
}
