package domain

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Model is a named family of versions, e.g. "fraud-scorer".
type Model struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
}

// Validate checks everything a caller controls.
func (m Model) Validate() error {
	if err := ValidateName("model", m.Name); err != nil {
		return err
	}
	if len(m.Description) > 4096 {
		return fmt.Errorf("model %q: description is %d bytes, at most 4096 allowed: %w", m.Name, len(m.Description), ErrInvalid)
	}
	if len(m.Owner) > 256 {
		return fmt.Errorf("model %q: owner is %d bytes, at most 256 allowed: %w", m.Name, len(m.Owner), ErrInvalid)
	}
	return ValidateKeyValues("tag", m.Tags)
}

// Format says which runtime serves a version.
type Format string

// The formats a version may have; the runtimes behind them are chosen by a
// switch in the runtime package.
const (
	FormatXGBoostJSON Format = "xgboost-json"
	FormatProcess     Format = "process"
	FormatExternal    Format = "external"
	FormatOpenAI      Format = "openai"
)

// Formats lists every known format, in the order help text shows them.
var Formats = []Format{FormatXGBoostJSON, FormatProcess, FormatExternal, FormatOpenAI}

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("format %q is not one of %s: %w", s, joinFormats(), ErrInvalid)
}

// NeedsArtifact reports whether a version of this format must carry files.
// External and OpenAI versions point at a server someone else runs; a process
// version may or may not ship files for its command.
func (f Format) NeedsArtifact() bool { return f == FormatXGBoostJSON }

func joinFormats() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Lineage records where a version came from. It is fixed at push.
type Lineage struct {
	DatasetURI    string            `json:"dataset_uri,omitempty"`
	DatasetSHA256 string            `json:"dataset_sha256,omitempty"`
	CodeCommit    string            `json:"code_commit,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	Framework     string            `json:"framework,omitempty"`
	Dependencies  map[string]string `json:"dependencies,omitempty"`
	// ParentVersion is the version of the same model this one was derived
	// from (fine-tuned, retrained); 0 when none.
	ParentVersion int `json:"parent_version,omitempty"`
}

// Validate checks the lineage fields' shapes.
func (l Lineage) Validate() error {
	if l.DatasetSHA256 != "" && !IsHexSHA256(l.DatasetSHA256) {
		return fmt.Errorf("dataset sha256 %q must be 64 lower-case hex digits: %w", truncate(l.DatasetSHA256, 80), ErrInvalid)
	}
	if l.DatasetSHA256 != "" && l.DatasetURI == "" {
		return fmt.Errorf("dataset sha256 given without a dataset URI: %w", ErrInvalid)
	}
	if len(l.DatasetURI) > 2048 {
		return fmt.Errorf("dataset URI is %d bytes, at most 2048 allowed: %w", len(l.DatasetURI), ErrInvalid)
	}
	if l.CodeCommit != "" && !isCommit(l.CodeCommit) {
		return fmt.Errorf("code commit %q must be 7 to 64 hex digits: %w", truncate(l.CodeCommit, 80), ErrInvalid)
	}
	if len(l.Framework) > 256 {
		return fmt.Errorf("framework is %d bytes, at most 256 allowed: %w", len(l.Framework), ErrInvalid)
	}
	if l.ParentVersion < 0 {
		return fmt.Errorf("parent version %d must be positive: %w", l.ParentVersion, ErrInvalid)
	}
	if err := ValidateKeyValues("training parameter", l.Params); err != nil {
		return err
	}
	return ValidateKeyValues("dependency", l.Dependencies)
}

// IsHexSHA256 reports whether s is 64 lower-case hex digits.
func IsHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	return isLowerHex(s)
}

func isCommit(s string) bool {
	return len(s) >= 7 && len(s) <= 64 && isLowerHex(strings.ToLower(s))
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidateKeyValues checks a map of labels, tags, parameters or runtime
// options: keys 1..128 bytes of printable ASCII without '=' or ',', values at
// most 4096 bytes, at most 256 entries.
func ValidateKeyValues(kind string, kv map[string]string) error {
	if len(kv) > 256 {
		return fmt.Errorf("%d %ss given, at most 256 allowed: %w", len(kv), kind, ErrInvalid)
	}
	for _, k := range sortedKeys(kv) {
		if err := validateKey(kind, k); err != nil {
			return err
		}
		if len(kv[k]) > 4096 {
			return fmt.Errorf("%s %q: value is %d bytes, at most 4096 allowed: %w", kind, k, len(kv[k]), ErrInvalid)
		}
	}
	return nil
}

func validateKey(kind, k string) error {
	if k == "" || len(k) > 128 {
		return fmt.Errorf("%s key %q must be 1 to 128 bytes: %w", kind, truncate(k, 80), ErrInvalid)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == '=' || c == ',' {
			return fmt.Errorf("%s key %q may hold printable ASCII other than space, '=' and ',': %w", kind, truncate(k, 80), ErrInvalid)
		}
	}
	return nil
}

// ValidateMetrics checks registration metrics: valid keys, finite values.
func ValidateMetrics(m map[string]float64) error {
	if len(m) > 256 {
		return fmt.Errorf("%d metrics given, at most 256 allowed: %w", len(m), ErrInvalid)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if err := validateKey("metric", k); err != nil {
			return err
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("metric %q is %v; metrics must be finite numbers: %w", k, v, ErrInvalid)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
