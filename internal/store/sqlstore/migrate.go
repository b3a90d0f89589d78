package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrationFS embed.FS

var sqliteMigrations = mustSub(sqliteMigrationFS, "migrations/sqlite")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// migration is one embedded NNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads NNN_name.sql files in version order, rejecting
// malformed names and duplicate numbers.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, f := range files {
		num, name, ok := strings.Cut(strings.TrimSuffix(path.Base(f), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || name == "" {
			return nil, fmt.Errorf("migration file %s: name must be NNN_name.sql", f)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, f, v)
		}
		seen[v] = f
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the migrations the database lacks, in order, in one
// write transaction, recording each in schema_migrations; a database
// already up to date is left untouched. A database migrated by a newer
// binary is refused rather than used with a schema this one does not know.
func migrate(ctx context.Context, db *sql.DB, d *dialect, fsys fs.FS) (err error) {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return fmt.Errorf("no %s migrations embedded", d.name)
	}
	t, err := db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap(err, "begin migration")
	}
	defer func() {
		if err != nil {
			_ = t.Rollback()
		}
	}()
	if d.lockWrites != "" {
		if _, err := t.ExecContext(ctx, d.lockWrites); err != nil {
			return d.wrap(err, "take the store's write lock")
		}
	}
	if _, err := t.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL
	)`); err != nil {
		return d.wrap(err, "create schema_migrations")
	}
	var applied int
	if err := t.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied); err != nil {
		return d.wrap(err, "read schema_migrations")
	}
	if last := ms[len(ms)-1].version; applied > last {
		return fmt.Errorf("database schema is at version %d, newer than this binary knows (%d); upgrade slipway", applied, last)
	}
	for _, m := range ms {
		if m.version <= applied {
			continue
		}
		if _, err := t.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %03d_%s: %w", m.version, m.name, err)
		}
		if _, err := t.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, formatTime(time.Now())); err != nil {
			return d.wrap(err, fmt.Sprintf("record migration %03d_%s", m.version, m.name))
		}
	}
	if err := t.Commit(); err != nil {
		return d.wrap(err, "commit migrations")
	}
	return nil
}
