package sqlstore

import (
	"sort"
	"strings"

	"github.com/slipway-ml/slipway/internal/store"
)

// The shared SQL of every dialect, written with '?' placeholders (see
// dialect.rebind). It uses only what SQLite and PostgreSQL both speak:
// INSERT … ON CONFLICT, COALESCE, LIMIT, EXISTS.

const (
	modelCols   = `name, description, owner, tags, created_by, created_at`
	versionCols = `model, number, artifact_digest, artifact_size, artifact_files, format, ` +
		`runtime_config, lineage, metrics, labels, state, created_by, created_at`
	aliasCols = `model, name, version, updated_by, updated_at`
	tokenCols = `id, name, role, hash, created_by, created_at, revoked_at`
	auditCols = `seq, time, actor, action, subject, before, after, prev_hash, hash`
)

// Models.
const (
	qGetModel    = `SELECT ` + modelCols + ` FROM models WHERE name = ?`
	qModelExists = `SELECT 1 FROM models WHERE name = ?`
	qListModels  = `SELECT ` + modelCols + ` FROM models WHERE name > ? ORDER BY name LIMIT ?`
	qInsertModel = `INSERT INTO models (` + modelCols + `) VALUES (?, ?, ?, ?, ?, ?)`
)

// Versions and their labels.
const (
	qGetVersion     = `SELECT ` + versionCols + ` FROM versions WHERE model = ? AND number = ?`
	qVersionExists  = `SELECT 1 FROM versions WHERE model = ? AND number = ?`
	qCountVersions  = `SELECT COUNT(*) FROM versions WHERE model = ?`
	qNextVersion    = `SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE model = ?`
	qInsertVersion  = `INSERT INTO versions (` + versionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qSetState       = `UPDATE versions SET state = ? WHERE model = ? AND number = ?`
	qSetLabels      = `UPDATE versions SET labels = ? WHERE model = ? AND number = ?`
	qDeleteLabels   = `DELETE FROM version_labels WHERE model = ? AND number = ?`
	qInsertLabel    = `INSERT INTO version_labels (model, number, key, value) VALUES (?, ?, ?, ?)`
	qVersionAliases = `SELECT name FROM aliases WHERE model = ? AND version = ? ORDER BY name`
	qModelAliases   = `SELECT name, version FROM aliases WHERE model = ? ORDER BY name`
)

// listVersionsQuery builds the listing for a filter: versions after the
// cursor in number order, every given condition ANDed. Label keys are
// sorted so one filter shape always gives the same SQL text.
func listVersionsQuery(model string, f store.VersionFilter, after int64, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + versionCols + ` FROM versions v WHERE v.model = ? AND v.number > ?`)
	args := []any{model, after}
	if f.State != "" {
		b.WriteString(` AND v.state = ?`)
		args = append(args, string(f.State))
	}
	if f.Alias != "" {
		b.WriteString(` AND v.number = (SELECT a.version FROM aliases a WHERE a.model = v.model AND a.name = ?)`)
		args = append(args, f.Alias)
	}
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(` AND EXISTS (SELECT 1 FROM version_labels l` +
			` WHERE l.model = v.model AND l.number = v.number AND l.key = ? AND l.value = ?)`)
		args = append(args, k, f.Labels[k])
	}
	b.WriteString(` ORDER BY v.number LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}

// Aliases.
const (
	qGetAlias    = `SELECT ` + aliasCols + ` FROM aliases WHERE model = ? AND name = ?`
	qListAliases = `SELECT ` + aliasCols + ` FROM aliases WHERE model = ? ORDER BY name`
	qUpsertAlias = `INSERT INTO aliases (` + aliasCols + `) VALUES (?, ?, ?, ?, ?)` +
		` ON CONFLICT (model, name) DO UPDATE SET version = excluded.version,` +
		` updated_by = excluded.updated_by, updated_at = excluded.updated_at`
	qDeleteAlias = `DELETE FROM aliases WHERE model = ? AND name = ?`
)

// Tokens.
const (
	qGetToken       = `SELECT ` + tokenCols + ` FROM tokens WHERE id = ?`
	qGetTokenByName = `SELECT ` + tokenCols + ` FROM tokens WHERE name = ?`
	qListTokens     = `SELECT ` + tokenCols + ` FROM tokens WHERE name > ? ORDER BY name LIMIT ?`
	qInsertToken    = `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qRevokeToken    = `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`
	qTokenRevokedAt = `SELECT revoked_at FROM tokens WHERE id = ?`
)

// The audit log.
const (
	qAuditHead       = `SELECT seq, hash FROM audit_head WHERE id = 1`
	qUpdateAuditHead = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`
	qInsertAudit     = `INSERT INTO audit_entries (` + auditCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qScanAudit       = `SELECT ` + auditCols + ` FROM audit_entries ORDER BY seq`
)

// listAuditQuery builds the audit listing. A subject matches itself and
// everything under it: subject = s, or s+"/" <= subject < s+"0" ('0' is
// the byte after '/'), a range an index serves and that, unlike LIKE, gives
// '_' and '%' no meaning. (PostgreSQL needs the column in COLLATE "C" for
// the range to follow bytes.)
func listAuditQuery(f store.AuditFilter, after int64, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + auditCols + ` FROM audit_entries WHERE seq > ?`)
	args := []any{after}
	if f.Subject != "" {
		b.WriteString(` AND (subject = ? OR (subject >= ? AND subject < ?))`)
		args = append(args, f.Subject, f.Subject+"/", f.Subject+"0")
	}
	if f.Actor != "" {
		b.WriteString(` AND actor = ?`)
		args = append(args, f.Actor)
	}
	b.WriteString(` ORDER BY seq LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}

// where builds a listing's SQL: a base query with its arguments, then one
// condition per filter field that is set, then the tail (order, limit).
type where struct {
	b    strings.Builder
	args []any
}

func newWhere(base string, args ...any) *where {
	w := &where{args: args}
	w.b.WriteString(base)
	return w
}

// and adds " AND expr" with its arguments when set.
func (w *where) and(set bool, expr string, args ...any) {
	if set {
		w.b.WriteString(" AND " + expr)
		w.args = append(w.args, args...)
	}
}

// end appends the tail and returns the query and its arguments.
func (w *where) end(tail string, args ...any) (string, []any) {
	w.b.WriteString(" " + tail)
	return w.b.String(), append(w.args, args...)
}
