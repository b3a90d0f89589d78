package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

func datasetSubject(name string, n int) string { return fmt.Sprintf("dataset/%s/version/%d", name, n) }

// DatasetPush is a request to store an evaluation dataset.
type DatasetPush struct {
	Name   string
	Format dataset.Format
	Roles  dataset.Roles
	// Body is the file; MaxBytes caps it (a longer body fails with
	// *ErrTooLarge and stores nothing).
	Body     io.Reader
	MaxBytes int64
}

// ErrDatasetTooLarge wraps a push whose body is over the cap.
type ErrDatasetTooLarge struct{ Limit int64 }

func (e *ErrDatasetTooLarge) Error() string {
	return fmt.Sprintf("dataset is larger than this server's limit of %d bytes", e.Limit)
}

func (e *ErrDatasetTooLarge) Unwrap() error { return domain.ErrInvalid }

// DatasetResult is what a push did: Created is false when the name already
// had a version with the same bytes and the same roles, which is returned
// instead of a duplicate.
type DatasetResult struct {
	Dataset domain.Dataset
	Created bool
}

// PushDataset stores an evaluation dataset: it spools the body to a
// temporary file while hashing it, infers the schema and checks the roles
// and every label (a missing or NaN label is refused with its row), and
// only then stores the bytes as a blob and the dataset row with its audit
// entry in one transaction. A refused push stores nothing. Identical bytes
// with identical roles under the same name give back the existing version.
func (r *Registry) PushDataset(ctx context.Context, actor string, p DatasetPush) (DatasetResult, error) {
	if err := domain.ValidateName("dataset", p.Name); err != nil {
		return DatasetResult{}, err
	}
	if p.Format != dataset.FormatCSV && p.Format != dataset.FormatJSONL {
		return DatasetResult{}, fmt.Errorf("dataset format %q is not csv or jsonl: %w", p.Format, domain.ErrInvalid)
	}
	for i, seg := range p.Roles.Segments {
		if slices.Contains(p.Roles.Segments[:i], seg) {
			return DatasetResult{}, fmt.Errorf("segment column %q is given twice: %w", seg, domain.ErrInvalid)
		}
	}
	tmp, err := os.CreateTemp("", "slipway-dataset-*")
	if err != nil {
		return DatasetResult{}, fmt.Errorf("spooling the dataset: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(p.Body, p.MaxBytes+1))
	if err != nil {
		return DatasetResult{}, fmt.Errorf("reading the dataset: %w", err)
	}
	if n > p.MaxBytes {
		return DatasetResult{}, &ErrDatasetTooLarge{Limit: p.MaxBytes}
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	schema, task, err := inspectDataset(tmp, p.Format, p.Roles)
	if err != nil {
		return DatasetResult{}, err
	}
	d := domain.Dataset{
		Name: p.Name, Digest: digest, Size: n, Format: string(schema.Format), Rows: schema.Rows, Task: task,
		Label: schema.Label, Segments: schema.Segments, Sensitive: schema.Sensitive, CreatedBy: actor, CreatedAt: r.clock.Now(),
	}
	for _, c := range schema.Columns {
		d.Columns = append(d.Columns, domain.DatasetColumn{Name: c.Name, Type: string(c.Type), Missing: c.Missing})
	}
	if same, err := r.sameDataset(ctx, r.store, d); err != nil || same != nil {
		if same != nil {
			return DatasetResult{Dataset: *same}, nil
		}
		return DatasetResult{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return DatasetResult{}, err
	}
	if _, err := r.blobs.Put(ctx, digest, n, tmp); err != nil {
		return DatasetResult{}, fmt.Errorf("storing the dataset's bytes: %w", err)
	}
	res := DatasetResult{Created: true}
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		// Checked again under the write lock: two identical pushes at once
		// make one version.
		same, err := r.sameDataset(ctx, tx, d)
		if err != nil || same != nil {
			if same != nil {
				res = DatasetResult{Dataset: *same}
			}
			return err
		}
		if res.Dataset, err = tx.CreateDataset(ctx, d); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: res.Dataset.CreatedAt, Actor: actor, Action: "dataset.create",
			Subject: datasetSubject(res.Dataset.Name, res.Dataset.Number), After: audit.Document(res.Dataset),
		})
		return err
	})
	if err != nil {
		return DatasetResult{}, err
	}
	return res, nil
}

// inspectDataset reads the spooled file twice: once for the schema, once
// for the labels, which are checked row by row.
func inspectDataset(f *os.File, format dataset.Format, roles dataset.Roles) (dataset.Schema, domain.Task, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return dataset.Schema{}, "", err
	}
	schema, err := dataset.Inspect(f, format, roles)
	if err != nil {
		return dataset.Schema{}, "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return dataset.Schema{}, "", err
	}
	t, err := dataset.Read(f, schema)
	if err != nil {
		return dataset.Schema{}, "", err
	}
	_, task, err := t.Labels(roles.Task)
	if err != nil {
		return dataset.Schema{}, "", err
	}
	if task == domain.TaskRegression && schema.Sensitive != "" {
		return dataset.Schema{}, "", fmt.Errorf("sensitive column %q: fairness gaps (true-positive and positive rates) are computed for classification only, and the labels of %q make this a regression dataset; pass it as --segment %s for MAE, RMSE and R² per group: %w",
			schema.Sensitive, schema.Label, schema.Sensitive, domain.ErrInvalid)
	}
	for _, col := range append(slices.Clone(schema.Segments), schema.Sensitive) {
		if col == "" {
			continue
		}
		values := map[string]bool{}
		for _, v := range t.Text(col) {
			if values[v] = true; len(values) > domain.MaxSegmentValues {
				return dataset.Schema{}, "", fmt.Errorf("column %q has more than %d distinct values; a segment or sensitive column groups rows, it is not an identifier: %w", col, domain.MaxSegmentValues, domain.ErrInvalid)
			}
		}
	}
	return schema, task, nil
}

// sameDataset finds a version of d.Name with d's bytes and roles.
func (r *Registry) sameDataset(ctx context.Context, rd store.Reader, d domain.Dataset) (*domain.Dataset, error) {
	ds, _, err := rd.ListDatasets(ctx, store.DatasetFilter{Name: d.Name, Digest: d.Digest}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		return nil, err
	}
	for _, o := range ds {
		if o.Label == d.Label && o.Sensitive == d.Sensitive && slices.Equal(o.Segments, d.Segments) && o.Task == d.Task {
			return &o, nil
		}
	}
	return nil, nil
}

// GetDataset returns a dataset version by reference: NAME (the latest) or
// NAME@N.
func (r *Registry) GetDataset(ctx context.Context, ref string) (domain.Dataset, error) {
	name, n, err := domain.ParseDatasetRef(ref)
	if err != nil {
		return domain.Dataset{}, err
	}
	return r.store.GetDataset(ctx, name, n)
}

// ListDatasets returns one page of datasets, of one name when name is set.
func (r *Registry) ListDatasets(ctx context.Context, name string, p store.Page) ([]domain.Dataset, string, error) {
	if name != "" {
		if err := domain.ValidateName("dataset", name); err != nil {
			return nil, "", err
		}
	}
	return r.store.ListDatasets(ctx, store.DatasetFilter{Name: name}, p)
}

// OpenDataset returns a dataset version's bytes, checked against its
// digest as they are read to the end.
func (r *Registry) OpenDataset(ctx context.Context, d domain.Dataset) (io.ReadCloser, error) {
	rc, size, err := r.blobs.Open(ctx, d.Digest)
	if err != nil {
		return nil, fmt.Errorf("bytes of dataset %s: %w", d.Ref(), err)
	}
	if size != d.Size {
		rc.Close()
		return nil, fmt.Errorf("bytes of dataset %s: stored blob has %d bytes, the dataset %d: %w", d.Ref(), size, d.Size, domain.ErrPrecondition)
	}
	return &checkedReader{rc: rc, h: sha256.New(), want: d.Digest, what: d.Ref()}, nil
}

// checkedReader fails the read that reaches EOF when the bytes do not hash
// to the digest they were stored under.
type checkedReader struct {
	rc         io.ReadCloser
	h          hashWriter
	want, what string
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := "sha256:" + hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("bytes of dataset %s hash to %s, not %s: the stored blob is corrupt: %w", c.what, got, c.want, domain.ErrPrecondition)
		}
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.rc.Close() }
