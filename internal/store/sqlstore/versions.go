package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// GetVersion returns one version with its aliases, sorted.
func (r *reader) GetVersion(ctx context.Context, model string, number int) (domain.Version, error) {
	what := fmt.Sprintf("version %d of model %q", number, model)
	var v domain.Version
	err := r.snapshot(ctx, func(q querier) error {
		var err error
		if v, err = versionScanner()(q.QueryRowContext(ctx, r.d.rebind(qGetVersion), model, number)); err != nil {
			return err
		}
		v.Aliases, err = queryAll(ctx, q, r.d.rebind(qVersionAliases), []any{model, number}, 0, scanString)
		return err
	})
	if err != nil {
		return domain.Version{}, r.d.wrap(err, what)
	}
	return v, nil
}

// ListVersions returns a model's versions in number order, each with its
// aliases; ErrNotFound when the model does not exist. The model's aliases
// are read once per page, not once per version.
func (r *reader) ListVersions(ctx context.Context, model string, f store.VersionFilter, p store.Page) ([]domain.Version, string, error) {
	what := fmt.Sprintf("versions of model %q", model)
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	after, err := decodeSeqCursor(cursorVersion, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	query, args := listVersionsQuery(model, f, after, p.Limit+1)
	var versions []domain.Version
	err = r.snapshot(ctx, func(q querier) error {
		if err := r.modelExists(ctx, q, model); err != nil {
			return err
		}
		aliases, err := r.aliasesByVersion(ctx, q, model)
		if err != nil {
			return r.d.wrap(err, "aliases of model "+strconv.Quote(model))
		}
		versions, err = queryAll(ctx, q, r.d.rebind(query), args, p.Limit+1, versionScanner())
		if err != nil {
			return r.d.wrap(err, "list "+what)
		}
		for i := range versions {
			versions[i].Aliases = aliases[versions[i].Number]
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	versions, next := cutPage(versions, p.Limit, cursorVersion, func(v domain.Version) string {
		return strconv.Itoa(v.Number)
	})
	return versions, next, nil
}

// aliasesByVersion maps version numbers to their alias names, sorted.
func (r *reader) aliasesByVersion(ctx context.Context, q querier, model string) (map[int][]string, error) {
	rows, err := q.QueryContext(ctx, r.d.rebind(qModelAliases), model)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byVersion := make(map[int][]string)
	for rows.Next() {
		var (
			name    string
			version int
		)
		if err := rows.Scan(&name, &version); err != nil {
			return nil, err
		}
		byVersion[version] = append(byVersion[version], name)
	}
	return byVersion, rows.Err()
}

// CountVersions returns 0 for a model without versions, and for an
// unknown one.
func (r *reader) CountVersions(ctx context.Context, model string) (int, error) {
	var n int
	if err := r.q.QueryRowContext(ctx, r.d.rebind(qCountVersions), model).Scan(&n); err != nil {
		return 0, r.d.wrap(err, fmt.Sprintf("count versions of model %q", model))
	}
	return n, nil
}

// versionRow is the scan target of a versions row. One is reused for every
// row of a listing: scanning into fresh locals would put each on the heap,
// a dozen allocations per version.
type versionRow struct {
	v                                       domain.Version
	format, state, created                  string
	runtimeConfig, lineage, metrics, labels string
	dest                                    []any
}

// versionScanner returns a scan function for queryAll that reuses one row.
func versionScanner() func(scanner) (domain.Version, error) {
	r := &versionRow{}
	r.dest = []any{&r.v.Model, &r.v.Number, &r.v.ArtifactDigest, &r.v.ArtifactSize, &r.v.ArtifactFiles, &r.format,
		&r.runtimeConfig, &r.lineage, &r.metrics, &r.labels, &r.state, &r.v.CreatedBy, &r.created}
	return r.scan
}

func (r *versionRow) scan(s scanner) (domain.Version, error) {
	if err := s.Scan(r.dest...); err != nil {
		return domain.Version{}, err
	}
	v := r.v
	v.Format, v.State = domain.Format(r.format), domain.State(r.state)
	var err error
	if v.RuntimeConfig, err = decodeStrings("runtime config", r.runtimeConfig); err != nil {
		return v, storedVersionErr(v, err)
	}
	if v.Lineage, err = decodeLineage(r.lineage); err != nil {
		return v, storedVersionErr(v, err)
	}
	if v.Metrics, err = decodeFloats("metrics", r.metrics); err != nil {
		return v, storedVersionErr(v, err)
	}
	if v.Labels, err = decodeStrings("labels", r.labels); err != nil {
		return v, storedVersionErr(v, err)
	}
	if v.CreatedAt, err = parseTime(r.created); err != nil {
		return v, storedVersionErr(v, err)
	}
	return v, nil
}

func storedVersionErr(v domain.Version, err error) error {
	return fmt.Errorf("version %d of model %q: %w", v.Number, v.Model, err)
}

func scanString(s scanner) (string, error) {
	var v string
	err := s.Scan(&v)
	return v, err
}

// CreateVersion numbers v after the model's last version; writes are
// serialised, so the number cannot be taken between reading and writing it.
// The version is stored as registered unless v says otherwise.
func (t *tx) CreateVersion(ctx context.Context, v domain.Version) (domain.Version, error) {
	what := fmt.Sprintf("new version of model %q", v.Model)
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextVersion), v.Model).Scan(&v.Number); err != nil {
		return domain.Version{}, t.d.wrap(err, what)
	}
	v = normalizeVersion(v)
	var docs [4]string
	for i, d := range []struct {
		what string
		v    any
	}{{"runtime config", v.RuntimeConfig}, {"lineage", v.Lineage}, {"metrics", v.Metrics}, {"labels", v.Labels}} {
		var err error
		if docs[i], err = encodeJSON(d.what, d.v); err != nil {
			return domain.Version{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	_, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertVersion),
		v.Model, v.Number, v.ArtifactDigest, v.ArtifactSize, v.ArtifactFiles, string(v.Format),
		docs[0], docs[1], docs[2], docs[3], string(v.State), v.CreatedBy, formatTime(v.CreatedAt))
	if err != nil {
		// The only foreign key is the model's.
		return domain.Version{}, t.d.wrap(err, fmt.Sprintf("model %q", v.Model))
	}
	if err := t.insertLabels(ctx, v.Model, v.Number, v.Labels); err != nil {
		return domain.Version{}, err
	}
	return v, nil
}

// normalizeVersion gives v the shape it has when read back: UTC time,
// empty maps as nil, the default state, no aliases.
func normalizeVersion(v domain.Version) domain.Version {
	if v.State == "" {
		v.State = domain.StateRegistered
	}
	v.CreatedAt = v.CreatedAt.UTC()
	v.Aliases = nil
	if len(v.RuntimeConfig) == 0 {
		v.RuntimeConfig = nil
	}
	if len(v.Metrics) == 0 {
		v.Metrics = nil
	}
	if len(v.Labels) == 0 {
		v.Labels = nil
	}
	if len(v.Lineage.Params) == 0 {
		v.Lineage.Params = nil
	}
	if len(v.Lineage.Dependencies) == 0 {
		v.Lineage.Dependencies = nil
	}
	return v
}

// SetVersionState returns ErrNotFound when the version does not exist.
// Whether the move is legal is the registry's call, not the store's.
func (t *tx) SetVersionState(ctx context.Context, model string, number int, s domain.State) error {
	what := fmt.Sprintf("version %d of model %q", number, model)
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qSetState), string(s), model, number)
	if err != nil {
		return t.d.wrap(err, what)
	}
	return mustAffect(res, what)
}

// SetVersionLabels replaces a version's labels, keeping the label index in
// step; ErrNotFound when the version does not exist.
func (t *tx) SetVersionLabels(ctx context.Context, model string, number int, labels map[string]string) error {
	what := fmt.Sprintf("version %d of model %q", number, model)
	doc, err := encodeJSON("labels", labels)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	res, err := t.tx.ExecContext(ctx, t.d.rebind(qSetLabels), doc, model, number)
	if err != nil {
		return t.d.wrap(err, what)
	}
	if err := mustAffect(res, what); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qDeleteLabels), model, number); err != nil {
		return t.d.wrap(err, "labels of "+what)
	}
	return t.insertLabels(ctx, model, number, labels)
}

func (t *tx) insertLabels(ctx context.Context, model string, number int, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	stmt, err := t.tx.PrepareContext(ctx, t.d.rebind(qInsertLabel))
	if err != nil {
		return t.d.wrap(err, fmt.Sprintf("labels of version %d of model %q", number, model))
	}
	defer stmt.Close()
	for _, k := range keys {
		if _, err := stmt.ExecContext(ctx, model, number, k, labels[k]); err != nil {
			return t.d.wrap(err, fmt.Sprintf("label %q of version %d of model %q", k, number, model))
		}
	}
	return nil
}

// mustAffect returns ErrNotFound naming what when an UPDATE or DELETE
// matched no row.
func mustAffect(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: rows affected: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, domain.ErrNotFound)
	}
	return nil
}
