package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Text people type — a rejection comment, a break-glass reason, a model
// description — is printed one line per row, columns aligned, and never
// passes a tab, newline or terminal escape sequence through.
func TestTablesKeepTypedTextOnOneLine(t *testing.T) {
	var out bytes.Buffer
	typed := "line one\nline two\ttabbed\x1b[31mred\r\u0085"
	if err := printTable(&out, table{header: []string{"ID", "REASON", "BY"}, rows: [][]string{{"1", typed, "alice"}, {"22", "ok", "bob"}}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || strings.ContainsAny(out.String(), "\t\x1b\r\u0085") {
		t.Fatalf("table:\n%q", out.String())
	}
	if at := strings.Index(lines[0], "BY"); strings.Index(lines[1], "alice") != at || strings.Index(lines[2], "bob") != at {
		t.Errorf("the BY column is not aligned:\n%s", out.String())
	}

	long := strings.Repeat("日本語", 30)
	if got := oneLine(long); !utf8.ValidString(got) || utf8.RuneCountInString(got) != 60 || !strings.HasSuffix(got, "...") {
		t.Errorf("oneLine(%d runes) = %q", utf8.RuneCountInString(long), got)
	}

	var g globals
	var report bytes.Buffer
	g.stdout = &report
	p := domain.Promotion{ID: 4, Version: 2, Environment: "production", State: domain.PromotionRejected, Reason: "rejected by alice: " + typed}
	if err := g.emitReport(p, []string{"alice rejected " + time.Time{}.String() + ": " + typed}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(report.String(), "\n"); n != 2 || strings.ContainsAny(report.String(), "\t\x1b\r") {
		t.Errorf("promotion report:\n%q", report.String())
	}
}
