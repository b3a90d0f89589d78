package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func openInternal(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Every pooled connection, not just the first, carries the pragmas.
func TestSQLitePragmas(t *testing.T) {
	s := openInternal(t, filepath.Join(t.TempDir(), "p.db"))
	ctx := t.Context()
	check := func(pool string, db *sql.DB, conns int, want map[string]string) {
		held := make([]*sql.Conn, 0, conns)
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := range conns {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatalf("%s conn %d: %v", pool, i, err)
			}
			held = append(held, c)
			for pragma, w := range want {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s conn %d: PRAGMA %s: %v", pool, i, pragma, err)
				}
				if got != w {
					t.Errorf("%s conn %d: %s = %s, want %s", pool, i, pragma, got, w)
				}
			}
		}
	}
	common := map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"}
	check("writer", s.writeDB, 1, common)
	readers := map[string]string{"query_only": "1"}
	for k, v := range common {
		readers[k] = v
	}
	check("reader", s.readDB, 3, readers)
}

// A write transaction holds the database's write lock from BEGIN, so a
// second writer (another process, here a raw connection that will not
// wait) cannot start one.
func TestSQLiteWriteLockAtBegin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	s := openInternal(t, path)
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		// No statement has run in this transaction yet.
		otx, err := other.BeginTx(ctx, nil)
		if err == nil {
			otx.Rollback()
			t.Error("a second writer began while Update held the store")
		} else if classifySQLite(err) != kindBusy {
			t.Errorf("second writer: %v, want SQLITE_BUSY", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Once Update is over the other writer gets in.
	otx, err := other.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatalf("second writer after Update: %v", err)
	}
	otx.Rollback()
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.CreateModel(ctx, domain.Model{Name: "kept", CreatedBy: "a"})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openInternal(t, path)
	if _, err := s.GetModel(t.Context(), "kept"); err != nil {
		t.Errorf("model after reopen: %v", err)
	}
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil {
		t.Fatal(err)
	}
	var n, last int
	if err := s.readDB.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || last != ms[len(ms)-1].version {
		t.Errorf("schema_migrations: %d rows up to %d; want %d up to %d", n, last, len(ms), ms[len(ms)-1].version)
	}

	// A schema newer than the binary is refused.
	if _, err := s.writeDB.Exec(`INSERT INTO schema_migrations VALUES (999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	if s2, err := OpenSQLite(t.Context(), path); err == nil {
		s2.Close()
		t.Error("opened a database migrated by a newer binary")
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":  {"init.sql": {Data: []byte("SELECT 1")}},
		"zero":      {"000_init.sql": {Data: []byte("SELECT 1")}},
		"duplicate": {"001_a.sql": {Data: []byte("SELECT 1")}, "1_b.sql": {Data: []byte("SELECT 1")}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

func TestOpenSQLiteRejectsPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := OpenSQLite(t.Context(), p); !errors.Is(err, domain.ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("OpenSQLite(%q): %v, want ErrInvalid", p, err)
		}
	}
}

func TestRebind(t *testing.T) {
	pg := &dialect{numbered: true}
	for in, want := range map[string]string{
		`SELECT 1`: `SELECT 1`,
		`SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?`:       `SELECT a FROM t WHERE b = $1 AND c > $2 LIMIT $3`,
		`SELECT '?', "a?b" FROM t WHERE x = ?`:                `SELECT '?', "a?b" FROM t WHERE x = $1`,
		`SELECT 'it''s ?' WHERE y = ?`:                        `SELECT 'it''s ?' WHERE y = $1`,
		`INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`: `INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
	} {
		if got := pg.rebind(in); got != want {
			t.Errorf("rebind(%s) = %s, want %s", in, got, want)
		}
		if got := sqliteDialect.rebind(in); got != in {
			t.Errorf("sqlite rebind changed %s to %s", in, got)
		}
	}
}

func TestCursors(t *testing.T) {
	c := encodeCursor(cursorVersion, "42")
	if n, err := decodeSeqCursor(cursorVersion, c); err != nil || n != 42 {
		t.Errorf("round trip: %d, %v", n, err)
	}
	for _, bad := range []string{"%%", encodeCursor(cursorModel, "42"), encodeCursor(cursorVersion, "-1"), encodeCursor(cursorVersion, "x"), encodeCursor(cursorVersion, "")} {
		if _, err := decodeSeqCursor(cursorVersion, bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("decodeSeqCursor(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
