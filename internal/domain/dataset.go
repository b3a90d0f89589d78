package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Task is what a dataset's label asks a model to do.
type Task string

// Tasks. A label of 0/1 numbers or true/false is classification (binary,
// the positive class is 1); any other numeric label is regression.
const (
	TaskClassification Task = "classification"
	TaskRegression     Task = "regression"
)

// MaxSegmentValues bounds the distinct values of a segment or sensitive
// column: more is an identifier, not a group.
const MaxSegmentValues = 100

// DatasetColumn is one column of a dataset as inferred at push.
type DatasetColumn struct {
	Name string `json:"name"`
	// Type is number, bool or string.
	Type string `json:"type"`
	// Missing counts rows without a value.
	Missing int `json:"missing"`
}

// Dataset is one immutable version of a named evaluation dataset: its
// bytes are a blob named by Digest, its schema and roles were inferred and
// checked at push and never change.
type Dataset struct {
	Name   string `json:"name"`
	Number int    `json:"version"`
	// Digest is "sha256:<hex>" of the file exactly as pushed.
	Digest  string          `json:"digest"`
	Size    int64           `json:"size"`
	Format  string          `json:"format"`
	Rows    int             `json:"rows"`
	Columns []DatasetColumn `json:"columns"`
	Task    Task            `json:"task"`
	// Label is the column predictions are scored against.
	Label string `json:"label"`
	// Segments are columns whose values split the rows for per-segment
	// metrics; Sensitive is the column fairness gaps are computed over.
	Segments  []string  `json:"segments,omitempty"`
	Sensitive string    `json:"sensitive,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Ref is the dataset's name@number.
func (d Dataset) Ref() string { return d.Name + "@" + strconv.Itoa(d.Number) }

// RoleColumns lists the columns with a role: label, segments, sensitive.
func (d Dataset) RoleColumns() []string {
	out := append([]string{d.Label}, d.Segments...)
	if d.Sensitive != "" {
		out = append(out, d.Sensitive)
	}
	return out
}

// ParseDatasetRef splits "NAME" or "NAME@N"; number 0 means the latest
// version.
func ParseDatasetRef(ref string) (name string, number int, err error) {
	name, num, hasNum := strings.Cut(ref, "@")
	if err := ValidateName("dataset", name); err != nil {
		return "", 0, err
	}
	if !hasNum {
		return name, 0, nil
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("dataset version %q in %q must be a number from 1 (NAME@N), or leave it out for the latest: %w", truncate(num, 20), truncate(ref, 80), ErrInvalid)
	}
	return name, n, nil
}
