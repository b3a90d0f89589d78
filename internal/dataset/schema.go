// Package dataset reads evaluation datasets — CSV with a header, or JSON
// Lines — and infers their schema: column names, a type per column, which
// column is the label and which ones segment the rows. It is the parser of
// outside input behind `slipway dataset push`; it imports domain and the
// standard library only.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Format is how a dataset file is written.
type Format string

// Formats.
const (
	FormatCSV   Format = "csv"
	FormatJSONL Format = "jsonl"
)

// Type is a column's inferred type.
type Type string

// Column types. A column is a number when every present value is one, a
// bool when every present value is true or false, otherwise a string.
const (
	TypeNumber Type = "number"
	TypeBool   Type = "bool"
	TypeString Type = "string"
)

// Column is one column of a dataset.
type Column struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// Missing counts rows without a value (empty cell, null, absent key).
	Missing int `json:"missing"`
}

// Schema describes a dataset.
type Schema struct {
	Format   Format   `json:"format"`
	Columns  []Column `json:"columns"`
	Rows     int      `json:"rows"`
	Label    string   `json:"label"`
	Segments []string `json:"segments,omitempty"`
	// Sensitive is the column fairness gaps are computed over, if any.
	Sensitive string `json:"sensitive,omitempty"`
	// firstMissing holds, per column, the first row (from 1) without a
	// value; 0 when none.
	firstMissing []int
}

// Roles name the columns with a meaning.
type Roles struct {
	Label     string
	Segments  []string
	Sensitive string
	// Task, when set, says what the label is instead of inferring it
	// from the values (see Table.Labels).
	Task domain.Task
}

// Limits on what one dataset may hold.
const (
	MaxColumns   = 10_000
	MaxLineBytes = 16 << 20
	maxNameBytes = 256
)

// Inspect reads a whole dataset and returns its schema. The label column
// must exist and hold no missing values; segment and sensitive columns must
// exist.
func Inspect(r io.Reader, f Format, roles Roles) (Schema, error) {
	var s Schema
	var err error
	switch f {
	case FormatCSV:
		s, err = inspectCSV(r)
	case FormatJSONL:
		s, err = inspectJSONL(r)
	default:
		return Schema{}, fmt.Errorf("dataset format %q is not csv or jsonl: %w", f, domain.ErrInvalid)
	}
	if err != nil {
		return Schema{}, err
	}
	s.Format = f
	return s, s.assign(roles)
}

func (s *Schema) column(name string) *Column {
	for i := range s.Columns {
		if s.Columns[i].Name == name {
			return &s.Columns[i]
		}
	}
	return nil
}

func (s *Schema) assign(roles Roles) error {
	if s.Rows == 0 {
		return fmt.Errorf("dataset has no rows: %w", domain.ErrInvalid)
	}
	if roles.Label == "" {
		return fmt.Errorf("name the label column (--label): %w", domain.ErrInvalid)
	}
	lc := s.column(roles.Label)
	if lc == nil {
		return fmt.Errorf("label column %q is not in the dataset (columns: %s): %w", roles.Label, s.names(), domain.ErrInvalid)
	}
	if lc.Missing > 0 {
		where := ""
		if i := slices.IndexFunc(s.Columns, func(c Column) bool { return c.Name == roles.Label }); i < len(s.firstMissing) && s.firstMissing[i] > 0 {
			where = fmt.Sprintf(" (the first at row %d)", s.firstMissing[i])
		}
		return fmt.Errorf("label column %q is missing in %d rows%s; every row needs a label: %w", roles.Label, lc.Missing, where, domain.ErrInvalid)
	}
	s.Label = roles.Label
	for i, seg := range append(slices.Clone(roles.Segments), roles.Sensitive) {
		if seg == "" {
			continue
		}
		role := "segment"
		if i == len(roles.Segments) {
			role = "sensitive"
		}
		if s.column(seg) == nil {
			return fmt.Errorf("%s column %q is not in the dataset (columns: %s): %w", role, seg, s.names(), domain.ErrInvalid)
		}
		if seg == roles.Label {
			return fmt.Errorf("column %q cannot be both the label and the %s column: %w", seg, role, domain.ErrInvalid)
		}
	}
	s.Segments, s.Sensitive = roles.Segments, roles.Sensitive
	return nil
}

func (s *Schema) names() string {
	n := make([]string, 0, min(len(s.Columns), 20))
	for i, c := range s.Columns {
		if i == 20 {
			n = append(n, "…")
			break
		}
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// typer narrows a column's type as values arrive.
type typer struct {
	number, boolean bool
	seen            bool
}

func newTyper() typer { return typer{number: true, boolean: true} }

func (t *typer) text(v string) {
	t.seen = true
	if t.number {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		t.number = err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	if t.boolean {
		lv := strings.ToLower(strings.TrimSpace(v))
		t.boolean = lv == "true" || lv == "false"
	}
}

func (t *typer) result() Type {
	switch {
	case t.seen && t.number:
		return TypeNumber
	case t.seen && t.boolean:
		return TypeBool
	default:
		return TypeString
	}
}

func checkName(name string, seen map[string]bool, where string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s: a column has an empty name: %w", where, domain.ErrInvalid)
	case len(name) > maxNameBytes || !utf8.ValidString(name):
		return fmt.Errorf("%s: column name %.40q is longer than %d bytes or not UTF-8: %w", where, name, maxNameBytes, domain.ErrInvalid)
	case seen[name]:
		return fmt.Errorf("%s: column %q appears twice: %w", where, name, domain.ErrInvalid)
	}
	seen[name] = true
	return nil
}

func inspectCSV(r io.Reader) (Schema, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Schema{}, fmt.Errorf("CSV dataset is empty; it needs a header line: %w", domain.ErrInvalid)
	}
	if err != nil {
		return Schema{}, fmt.Errorf("CSV header: %v: %w", err, domain.ErrInvalid)
	}
	if len(header) > MaxColumns {
		return Schema{}, fmt.Errorf("CSV has %d columns, at most %d allowed: %w", len(header), MaxColumns, domain.ErrInvalid)
	}
	seen := map[string]bool{}
	s := Schema{Columns: make([]Column, len(header)), firstMissing: make([]int, len(header))}
	typers := make([]typer, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if err := checkName(h, seen, "CSV header"); err != nil {
			return Schema{}, err
		}
		s.Columns[i].Name = h
		typers[i] = newTyper()
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Schema{}, fmt.Errorf("CSV: %v: %w", err, domain.ErrInvalid)
		}
		s.Rows++
		for i, v := range rec {
			if strings.TrimSpace(v) == "" {
				if s.Columns[i].Missing == 0 {
					s.firstMissing[i] = s.Rows
				}
				s.Columns[i].Missing++
				continue
			}
			typers[i].text(v)
		}
	}
	for i := range s.Columns {
		s.Columns[i].Type = typers[i].result()
	}
	return s, nil
}

func inspectJSONL(r io.Reader) (Schema, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	var s Schema
	index := map[string]int{}
	var typers []typer
	var present []int  // rows that had each column
	var lastSeen []int // the last row that had each column
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(b, &row); err != nil {
			return Schema{}, fmt.Errorf("JSON Lines line %d is not a JSON object: %v: %w", line, err, domain.ErrInvalid)
		}
		s.Rows++
		for k, raw := range row {
			i, ok := index[k]
			if !ok {
				if len(index) >= MaxColumns {
					return Schema{}, fmt.Errorf("JSON Lines dataset has more than %d keys: %w", MaxColumns, domain.ErrInvalid)
				}
				if err := checkName(k, map[string]bool{}, fmt.Sprintf("JSON Lines line %d", line)); err != nil {
					return Schema{}, err
				}
				i = len(s.Columns)
				index[k] = i
				s.Columns = append(s.Columns, Column{Name: k})
				typers = append(typers, newTyper())
				present = append(present, 0)
				lastSeen = append(lastSeen, 0)
				s.firstMissing = append(s.firstMissing, 0)
				if s.Rows > 1 {
					s.firstMissing[i] = 1
				}
			}
			if err := typeJSON(&typers[i], raw); err != nil {
				return Schema{}, fmt.Errorf("JSON Lines line %d, key %q: %w", line, k, err)
			}
			if string(raw) != "null" {
				present[i]++
				lastSeen[i] = s.Rows
			}
		}
		for i := range lastSeen {
			if lastSeen[i] != s.Rows && s.firstMissing[i] == 0 {
				s.firstMissing[i] = s.Rows
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Schema{}, fmt.Errorf("JSON Lines line %d: %v: %w", line+1, err, domain.ErrInvalid)
	}
	for i := range s.Columns {
		s.Columns[i].Type = typers[i].result()
		s.Columns[i].Missing = s.Rows - present[i]
	}
	order := make([]int, len(s.Columns))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(s.Columns[a].Name, s.Columns[b].Name) })
	cols, first := make([]Column, len(order)), make([]int, len(order))
	for to, from := range order {
		cols[to], first[to] = s.Columns[from], s.firstMissing[from]
	}
	s.Columns, s.firstMissing = cols, first
	return s, nil
}

func typeJSON(t *typer, raw json.RawMessage) error {
	switch {
	case len(raw) == 0:
		return fmt.Errorf("empty value: %w", domain.ErrInvalid)
	case string(raw) == "null":
		return nil
	case raw[0] == '{' || raw[0] == '[':
		return fmt.Errorf("nested objects and arrays are not supported; flatten them into columns: %w", domain.ErrInvalid)
	case raw[0] == '"':
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%v: %w", err, domain.ErrInvalid)
		}
		t.seen, t.number, t.boolean = true, false, false
	case string(raw) == "true" || string(raw) == "false":
		t.seen, t.number = true, false
	default:
		t.seen, t.boolean = true, false
	}
	return nil
}
