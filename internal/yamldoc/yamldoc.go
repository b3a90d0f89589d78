// Package yamldoc reads the declarative documents `slipway apply` takes
// (gate policies, rollouts) with errors that name the file, the line and
// the reason: strict about unknown and repeated fields, one document per
// file, sizes bounded. It is pure: it parses bytes and nothing else.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Error is a document refused, with the file, line (0: the whole file)
// and reason. It is an ErrInvalid.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return e.File + ": " + e.Reason
}

// Unwrap makes an Error an ErrInvalid.
func (e *Error) Unwrap() error { return domain.ErrInvalid }

// Errorf builds an Error.
func Errorf(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Kind reads the kind of a document without judging the rest, so apply
// can dispatch it.
func Kind(file string, data []byte) (string, error) {
	var k struct {
		Kind string `yaml:"kind"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return "", Errorf(file, Line(err), "not valid YAML: %s", Reason(err))
	}
	return k.Kind, nil
}

// Root parses one document of at most max bytes whose top level is a
// mapping, and returns that mapping; what names the document's kind in
// errors ("a gate policy").
func Root(file string, data []byte, max int, what string) (*yaml.Node, error) {
	if len(data) > max {
		return nil, Errorf(file, 0, "the document is %d bytes, at most %d allowed", len(data), max)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, Errorf(file, Line(err), "not valid YAML: %s", Reason(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errorf(file, extra.Line, "more than one YAML document; apply one per document")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Errorf(file, doc.Line, "%s is a mapping of fields", what)
	}
	return doc.Content[0], nil
}

// Present reports whether an optional yaml.Node field was given.
func Present(n yaml.Node) bool { return n.Kind != 0 }

// DecodeStrict decodes a mapping node into v (a pointer to a struct with
// yaml tags), refusing keys the tags do not name and keys given twice,
// with their lines.
func DecodeStrict(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return &lineError{n.Line, "expected a mapping of fields"}
	}
	allowed := keys(v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return &lineError{k.Line, fmt.Sprintf("unknown field %q; allowed here: %s", truncate(k.Value, 40), strings.Join(allowed, ", "))}
		}
		for j := 0; j < i; j += 2 {
			if n.Content[j].Value == k.Value {
				return &lineError{k.Line, fmt.Sprintf("field %q is given twice", k.Value)}
			}
		}
	}
	return n.Decode(v)
}

// keys lists the yaml tags of a struct pointer's fields.
func keys(v any) []string {
	t := reflect.TypeOf(v).Elem()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}

// lineError is a problem at a line.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

var linePrefix = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// Line finds the line a YAML or DecodeStrict error names (0 when none).
func Line(err error) int {
	if le, ok := errors.AsType[*lineError](err); ok {
		return le.line
	}
	if m := linePrefix.FindStringSubmatch(message(err)); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// Reason is an error's text without a "yaml: line N:" prefix or a
// trailing ": invalid".
func Reason(err error) string {
	if le, ok := errors.AsType[*lineError](err); ok {
		return le.msg
	}
	msg := linePrefix.ReplaceAllString(message(err), "")
	msg = strings.TrimPrefix(msg, "yaml: ")
	return strings.TrimSuffix(msg, ": "+domain.ErrInvalid.Error())
}

func message(err error) string {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok && len(te.Errors) > 0 {
		return te.Errors[0]
	}
	return err.Error()
}

// KeyLine is the line of a mapping's key, or the mapping's own line.
func KeyLine(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return m.Line
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
