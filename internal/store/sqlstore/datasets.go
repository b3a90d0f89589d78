package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	gojson "github.com/goccy/go-json"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

const datasetCols = `name, number, digest, size, format, row_count, columns, task, label, segments, sensitive, created_by, created_at`

const (
	qGetDataset    = `SELECT ` + datasetCols + ` FROM datasets WHERE name = ? AND number = ?`
	qLatestDataset = `SELECT ` + datasetCols + ` FROM datasets WHERE name = ? ORDER BY number DESC LIMIT 1`
	qNextDataset   = `SELECT COALESCE(MAX(number), 0) + 1 FROM datasets WHERE name = ?`
	qInsertDataset = `INSERT INTO datasets (` + datasetCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

const cursorDataset = "s"

// GetDataset returns one dataset version, the latest when number is 0.
func (r *reader) GetDataset(ctx context.Context, name string, number int) (domain.Dataset, error) {
	// One query either way: a Row that is never scanned holds its
	// connection for good.
	what, query, args := fmt.Sprintf("version %d of dataset %q", number, name), qGetDataset, []any{name, number}
	if number == 0 {
		what, query, args = fmt.Sprintf("dataset %q", name), qLatestDataset, []any{name}
	}
	d, err := scanDataset(r.q.QueryRowContext(ctx, r.d.rebind(query), args...))
	if err != nil {
		return domain.Dataset{}, r.d.wrap(err, what)
	}
	return d, nil
}

// ListDatasets pages through datasets in (name, number) order.
func (r *reader) ListDatasets(ctx context.Context, f store.DatasetFilter, p store.Page) ([]domain.Dataset, string, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("list datasets: %w", err)
	}
	key, err := decodeCursor(cursorDataset, p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list datasets: %w", err)
	}
	var afterName string
	var afterNumber int
	if key != "" {
		n, num, ok := strings.Cut(key, "/")
		afterNumber, err = strconv.Atoi(num)
		if !ok || err != nil || afterNumber < 1 {
			return nil, "", fmt.Errorf("list datasets: %w", badCursor(p.Cursor))
		}
		afterName = n
	}
	w := newWhere(`SELECT `+datasetCols+` FROM datasets WHERE (name > ? OR (name = ? AND number > ?))`, afterName, afterName, afterNumber)
	w.and(f.Name != "", `name = ?`, f.Name)
	w.and(f.Digest != "", `digest = ?`, f.Digest)
	query, args := w.end(`ORDER BY name, number LIMIT ?`, p.Limit+1)
	ds, err := queryAll(ctx, r.q, r.d.rebind(query), args, p.Limit+1, scanDataset)
	if err != nil {
		return nil, "", r.d.wrap(err, "list datasets")
	}
	ds, next := cutPage(ds, p.Limit, cursorDataset, func(d domain.Dataset) string {
		return d.Name + "/" + strconv.Itoa(d.Number)
	})
	return ds, next, nil
}

func scanDataset(s scanner) (domain.Dataset, error) {
	var d domain.Dataset
	var columns, segments, task, created string
	if err := s.Scan(&d.Name, &d.Number, &d.Digest, &d.Size, &d.Format, &d.Rows, &columns, &task,
		&d.Label, &segments, &d.Sensitive, &d.CreatedBy, &created); err != nil {
		return d, err
	}
	d.Task = domain.Task(task)
	if err := gojson.Unmarshal([]byte(columns), &d.Columns); err != nil {
		return d, fmt.Errorf("stored columns of dataset %s: %w", d.Ref(), err)
	}
	if err := gojson.Unmarshal([]byte(segments), &d.Segments); err != nil {
		return d, fmt.Errorf("stored segments of dataset %s: %w", d.Ref(), err)
	}
	if len(d.Segments) == 0 {
		d.Segments = nil
	}
	var err error
	if d.CreatedAt, err = parseTime(created); err != nil {
		return d, fmt.Errorf("dataset %s: %w", d.Ref(), err)
	}
	return d, nil
}

// CreateDataset numbers d after the name's last version; writes are
// serialised, so the number cannot be taken in between.
func (t *tx) CreateDataset(ctx context.Context, d domain.Dataset) (domain.Dataset, error) {
	what := fmt.Sprintf("new version of dataset %q", d.Name)
	if err := t.tx.QueryRowContext(ctx, t.d.rebind(qNextDataset), d.Name).Scan(&d.Number); err != nil {
		return domain.Dataset{}, t.d.wrap(err, what)
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if len(d.Segments) == 0 {
		d.Segments = nil
	}
	columns, err := encodeArray("columns", d.Columns)
	if err != nil {
		return domain.Dataset{}, fmt.Errorf("%s: %w", what, err)
	}
	segments, err := encodeArray("segments", d.Segments)
	if err != nil {
		return domain.Dataset{}, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := t.tx.ExecContext(ctx, t.d.rebind(qInsertDataset), d.Name, d.Number, d.Digest, d.Size, d.Format,
		d.Rows, columns, string(d.Task), d.Label, segments, d.Sensitive, d.CreatedBy, formatTime(d.CreatedAt)); err != nil {
		return domain.Dataset{}, t.d.wrap(err, what)
	}
	return d, nil
}

// encodeArray stores a slice as a JSON array; nil as [].
func encodeArray(what string, v any) (string, error) {
	doc, err := encodeJSON(what, v)
	if doc == "{}" {
		return "[]", err
	}
	return doc, err
}
