// Package store declares how slipway keeps its state: a read side, and a
// write side that only exists inside one transaction, so every mutation and
// the audit entry recording it commit together or not at all.
//
// Implementations live in subpackages (sqlstore: SQLite and PostgreSQL) and
// all pass the one conformance suite in storetest. Services never see SQL and
// must not rely on any behaviour of one database that another lacks. This
// package imports domain and audit only.
package store

import (
	"context"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Page asks for one page of a list. Cursor is opaque: the NextCursor of the
// previous page, or empty for the first.
type Page struct {
	Limit  int
	Cursor string
}

// Page size bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Normalize applies the default limit and rejects a limit out of range.
func (p Page) Normalize() (Page, error) {
	if p.Limit == 0 {
		p.Limit = DefaultLimit
	}
	if p.Limit < 1 || p.Limit > MaxLimit {
		return p, &limitError{p.Limit}
	}
	return p, nil
}

// VersionFilter narrows a version listing. Zero fields match everything;
// all given fields must match.
type VersionFilter struct {
	Labels map[string]string
	State  domain.State
	Alias  string
}

// AuditFilter narrows an audit listing. Subject matches the subject itself
// and everything under it: "model/fraud" matches "model/fraud/version/3".
type AuditFilter struct {
	Subject string
	Actor   string
}

// DeploymentFilter narrows a deployment listing; zero fields match all.
type DeploymentFilter struct {
	Model       string
	Environment string
}

// DatasetFilter narrows a dataset listing; zero fields match all.
type DatasetFilter struct {
	Name   string
	Digest string
}

// EvaluationFilter narrows an evaluation listing; zero fields match all.
// Version needs Model; DatasetVersion needs Dataset.
type EvaluationFilter struct {
	Model         string
	Version       int
	DatasetDigest string
	// Dataset and DatasetVersion name one dataset version: its bytes and
	// the roles (label, segments, sensitive) they were scored with.
	Dataset        string
	DatasetVersion int
	Status         domain.EvaluationStatus
}

// Reader is the read side, usable inside and outside a transaction.
type Reader interface {
	GetModel(ctx context.Context, name string) (domain.Model, error)
	ListModels(ctx context.Context, p Page) (models []domain.Model, next string, err error)

	// GetVersion returns one version with its current aliases.
	GetVersion(ctx context.Context, model string, number int) (domain.Version, error)
	// ListVersions returns versions in ascending number order.
	ListVersions(ctx context.Context, model string, f VersionFilter, p Page) (versions []domain.Version, next string, err error)
	// CountVersions says how many versions a model has (0 if none).
	CountVersions(ctx context.Context, model string) (int, error)

	GetAlias(ctx context.Context, model, name string) (domain.Alias, error)
	ListAliases(ctx context.Context, model string) ([]domain.Alias, error)

	GetToken(ctx context.Context, id string) (domain.Token, error)
	GetTokenByName(ctx context.Context, name string) (domain.Token, error)
	ListTokens(ctx context.Context, p Page) (tokens []domain.Token, next string, err error)

	// GetDeployment returns what an environment serves of a model.
	GetDeployment(ctx context.Context, model, env string) (domain.Deployment, error)
	// ListDeployments returns deployments ordered by model, environment.
	ListDeployments(ctx context.Context, f DeploymentFilter, p Page) (deployments []domain.Deployment, next string, err error)

	// GetDataset returns one version of a dataset; number 0 means the
	// latest.
	GetDataset(ctx context.Context, name string, number int) (domain.Dataset, error)
	// ListDatasets returns datasets ordered by name, then number.
	ListDatasets(ctx context.Context, f DatasetFilter, p Page) (datasets []domain.Dataset, next string, err error)

	GetEvaluation(ctx context.Context, id int64) (domain.Evaluation, error)
	// ListEvaluations returns evaluations in ascending ID order.
	ListEvaluations(ctx context.Context, f EvaluationFilter, p Page) (evaluations []domain.Evaluation, next string, err error)
	// LatestEvaluation returns the matching evaluation with the highest
	// ID, or ErrNotFound.
	LatestEvaluation(ctx context.Context, f EvaluationFilter) (domain.Evaluation, error)

	// ListAudit returns entries in ascending sequence order.
	ListAudit(ctx context.Context, f AuditFilter, p Page) (entries []audit.Entry, next string, err error)
	// ScanAudit calls fn for every entry in sequence order, stopping at the
	// first error fn returns, in constant memory.
	ScanAudit(ctx context.Context, fn func(audit.Entry) error) error
	// AuditHead returns the sequence number and hash of the last appended
	// entry, as recorded beside the log (0 and "" when empty).
	AuditHead(ctx context.Context) (seq int64, hash string, err error)

	WebhookReader
	GateReader
	RolloutReader
}

// Tx is the write side. Writes run one at a time: a transaction holds the
// store's write lock from its start, so reads inside it see the state its
// writes will change.
type Tx interface {
	Reader

	// CreateModel returns ErrConflict when the name is taken.
	CreateModel(ctx context.Context, m domain.Model) error
	// CreateVersion assigns the next number of v.Model and returns the stored
	// version. The model must exist (ErrNotFound otherwise).
	CreateVersion(ctx context.Context, v domain.Version) (domain.Version, error)
	SetVersionState(ctx context.Context, model string, number int, s domain.State) error
	SetVersionLabels(ctx context.Context, model string, number int, labels map[string]string) error

	// SetAlias creates or moves an alias.
	SetAlias(ctx context.Context, a domain.Alias) error
	// DeleteAlias returns ErrNotFound when the alias does not exist.
	DeleteAlias(ctx context.Context, model, name string) error

	// PutDeployment creates or replaces a deployment; the model must exist.
	PutDeployment(ctx context.Context, d domain.Deployment) error
	// DeleteDeployment returns ErrNotFound when there is none.
	DeleteDeployment(ctx context.Context, model, env string) error

	// CreateToken returns ErrConflict when the name or ID is taken.
	CreateToken(ctx context.Context, t domain.Token) error
	RevokeToken(ctx context.Context, id string, at time.Time) error

	// CreateDataset assigns the next number of d.Name and returns the
	// stored dataset.
	CreateDataset(ctx context.Context, d domain.Dataset) (domain.Dataset, error)

	// CreateEvaluation assigns the next ID and stores e, which must be
	// running; the version and the dataset must exist (ErrNotFound).
	CreateEvaluation(ctx context.Context, e domain.Evaluation) (domain.Evaluation, error)
	// FinishEvaluation records the outcome of a running evaluation: status
	// (succeeded or failed), error, rows, metrics, segments, fairness,
	// features, baseline and finished time from e. ErrPrecondition when it
	// has finished already; ErrNotFound when there is no such evaluation.
	FinishEvaluation(ctx context.Context, e domain.Evaluation) error

	// AppendAudit seals e onto the end of the hash chain (filling Seq,
	// PrevHash and Hash) and stores it with the rest of the transaction.
	AppendAudit(ctx context.Context, e audit.Entry) (audit.Entry, error)

	WebhookWriter
	GateWriter
	RolloutWriter
}

// Store is a whole state store.
type Store interface {
	Reader
	// Update runs fn in one write transaction and commits when fn returns
	// nil; any error rolls every write back, audit entries included.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Ping reports whether the store can serve requests (readiness).
	Ping(ctx context.Context) error
	Close() error
}
