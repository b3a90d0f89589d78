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
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Table is a dataset read into memory, one slice of cells per column. A
// missing value (empty CSV cell, JSON null, absent key) is "". It is what
// an evaluation walks row by row; datasets are of modest size (the server
// caps uploads), so holding one in memory is the simple choice.
type Table struct {
	Schema Schema
	// Line is the file line each row starts on, from 1, for messages.
	Line  []int
	index map[string]int
	cells [][]string
}

// Read reads a dataset whose schema Inspect returned for the same bytes.
func Read(r io.Reader, s Schema) (*Table, error) {
	t := &Table{Schema: s, index: make(map[string]int, len(s.Columns)), cells: make([][]string, len(s.Columns))}
	for i, c := range s.Columns {
		t.index[c.Name] = i
		t.cells[i] = make([]string, 0, s.Rows)
	}
	var err error
	switch s.Format {
	case FormatCSV:
		err = t.readCSV(r)
	case FormatJSONL:
		err = t.readJSONL(r)
	default:
		err = fmt.Errorf("dataset format %q is not csv or jsonl: %w", s.Format, domain.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	if len(t.Line) != s.Rows {
		return nil, fmt.Errorf("dataset has %d rows, its schema says %d (the file changed between reads): %w", len(t.Line), s.Rows, domain.ErrInvalid)
	}
	return t, nil
}

func (t *Table) readCSV(r io.Reader) error {
	cr := csv.NewReader(r)
	if _, err := cr.Read(); err != nil {
		return readErr("CSV header", err)
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return readErr("CSV", err)
		}
		if len(rec) != len(t.cells) {
			return fmt.Errorf("CSV record has %d fields, the header %d: %w", len(rec), len(t.cells), domain.ErrInvalid)
		}
		line, _ := cr.FieldPos(0)
		t.Line = append(t.Line, line)
		for i, v := range rec {
			t.cells[i] = append(t.cells[i], strings.TrimSpace(v))
		}
	}
}

func (t *Table) readJSONL(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(b, &row); err != nil {
			return fmt.Errorf("JSON Lines line %d is not a JSON object: %v: %w", line, err, domain.ErrInvalid)
		}
		t.Line = append(t.Line, line)
		for i, c := range t.Schema.Columns {
			t.cells[i] = append(t.cells[i], jsonText(row[c.Name]))
		}
	}
	if err := sc.Err(); err != nil {
		return readErr(fmt.Sprintf("JSON Lines line %d", line+1), err)
	}
	return nil
}

// readErr tells malformed input (ErrInvalid) from a reader that failed,
// whose error is kept: a stored dataset that no longer matches its digest
// is not the caller's bad input.
func readErr(where string, err error) error {
	var parse *csv.ParseError
	if errors.As(err, &parse) || errors.Is(err, bufio.ErrTooLong) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %v: %w", where, err, domain.ErrInvalid)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// jsonText is a JSON scalar as text: a string's value, a number's or a
// bool's literal, "" for null or absent.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// Rows is the number of rows.
func (t *Table) Rows() int { return len(t.Line) }

// Has reports whether the dataset has a column.
func (t *Table) Has(name string) bool { _, ok := t.index[name]; return ok }

// Text returns a column's cells ("" where missing); nil for no such column.
func (t *Table) Text(name string) []string {
	i, ok := t.index[name]
	if !ok {
		return nil
	}
	return t.cells[i]
}

// where names a row for a person: its number among the rows and its line.
func (t *Table) where(row int) string {
	return fmt.Sprintf("row %d (line %d)", row+1, t.Line[row])
}

// Numbers returns a column as numbers for a model's input: missing values
// are NaN (what model servers read as missing), true/false are 1/0. Text
// is refused, naming the row.
func (t *Table) Numbers(name string) ([]float64, error) {
	cells := t.Text(name)
	if cells == nil {
		return nil, fmt.Errorf("column %q is not in the dataset: %w", name, domain.ErrInvalid)
	}
	out := make([]float64, len(cells))
	for r, v := range cells {
		f, ok, err := number(v)
		switch {
		case err != nil:
			return nil, fmt.Errorf("column %q, %s: %q is not a number or true/false: %w", name, t.where(r), truncate(v), domain.ErrInvalid)
		case !ok:
			out[r] = math.NaN()
		default:
			out[r] = f
		}
	}
	return out, nil
}

// number parses a cell: ok is false for a missing value.
func number(v string) (f float64, ok bool, err error) {
	switch strings.ToLower(v) {
	case "":
		return 0, false, nil
	case "true":
		return 1, true, nil
	case "false":
		return 0, true, nil
	}
	f, err = strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, false, err
	}
	return f, true, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// maxClasses bounds the distinct whole-number labels read as a class
// index rather than a quantity when the task is inferred.
const maxClasses = 20

// Labels returns the label column as numbers and the task: want when
// given (classification needs every label 0, 1, true or false), else the
// task the labels imply — classification when every label is 0, 1, true
// or false, regression for other numbers. Whole numbers from 0 with 3 to
// 20 distinct values look like the classes of a multi-class label, which
// slipway does not evaluate; inferring refuses them, and want =
// regression reads them as quantities. A missing, NaN, infinite or
// textual label is refused with the first row that holds one.
func (t *Table) Labels(want domain.Task) ([]float64, domain.Task, error) {
	name := t.Schema.Label
	cells := t.Text(name)
	if cells == nil {
		return nil, "", fmt.Errorf("label column %q is not in the dataset: %w", name, domain.ErrInvalid)
	}
	switch want {
	case "", domain.TaskClassification, domain.TaskRegression:
	default:
		return nil, "", fmt.Errorf("task %q is not classification or regression: %w", truncate(string(want)), domain.ErrInvalid)
	}
	out := make([]float64, len(cells))
	binary, whole := true, true
	classes := map[float64]bool{}
	firstOther := -1
	for r, v := range cells {
		f, ok, err := number(v)
		switch {
		case !ok && err == nil:
			return nil, "", fmt.Errorf("label column %q has no value at %s; every row needs a label: %w", name, t.where(r), domain.ErrInvalid)
		case err != nil:
			return nil, "", fmt.Errorf("label column %q at %s holds %q, not a number or true/false: %w", name, t.where(r), truncate(v), domain.ErrInvalid)
		case math.IsNaN(f) || math.IsInf(f, 0):
			return nil, "", fmt.Errorf("label column %q at %s is %s; labels must be finite numbers: %w", name, t.where(r), v, domain.ErrInvalid)
		}
		out[r] = f
		if f != 0 && f != 1 && firstOther < 0 {
			firstOther = r
		}
		binary = binary && (f == 0 || f == 1)
		whole = whole && f >= 0 && f == math.Trunc(f)
		if whole && len(classes) <= maxClasses {
			classes[f] = true
		}
	}
	switch {
	case want == domain.TaskClassification && !binary:
		return nil, "", fmt.Errorf("label column %q at %s is %s; a classification label is 0, 1, true or false (slipway evaluates binary classification): %w",
			name, t.where(firstOther), cells[firstOther], domain.ErrInvalid)
	case want != "":
		return out, want, nil
	case binary:
		return out, domain.TaskClassification, nil
	case whole && len(classes) >= 3 && len(classes) <= maxClasses:
		return nil, "", fmt.Errorf("label column %q holds %d distinct whole numbers from 0, like the classes of a multi-class label, which slipway does not evaluate (binary classification takes 0/1 labels); if the label is a quantity to predict, push with --task regression: %w",
			name, len(classes), domain.ErrInvalid)
	}
	return out, domain.TaskRegression, nil
}
