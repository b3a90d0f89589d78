package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// table is what a command prints in table mode: a header and rows.
type table struct {
	header []string
	rows   [][]string
}

// emit prints v as JSON or YAML, or t as a table.
func (g *globals) emit(v any, t func() table) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // for people: "->", not "-\u003e"
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(b)
		return err
	case "table", "":
		return printTable(g.stdout, t())
	default:
		return g.checkOutput()
	}
}

// checkOutput refuses an -o value emit cannot print.
func (g *globals) checkOutput() error {
	switch g.output {
	case "table", "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("output format %q is not one of table, json, yaml", g.output)
}

func printTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(cells []string) {
		clean := make([]string, len(cells))
		for i, c := range cells {
			clean[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(clean, "\t"))
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
	return tw.Flush()
}

// cell makes text someone typed (a comment, a reason, a description) safe
// to print on one line of a terminal: a tab would split the table's
// column, a newline its row, and an escape sequence would reach the
// reader's terminal. Each control character becomes a space.
func cell(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// moreHint tells a person reading a table that a listing goes on.
func (g *globals) moreHint(next string) {
	if next != "" && (g.output == "table" || g.output == "") {
		fmt.Fprintf(g.stderr, "more results: repeat with --cursor %s\n", next)
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func kv(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
