package logbuf

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/logtest"
)

// Info lines wait in the buffer; a warning writes them, in order, with
// itself; Close writes the rest.
func TestHoldsInfoWritesWarnings(t *testing.T) {
	var out logtest.Buffer
	buf := New(&out, 64<<10, time.Hour) // the ticker never fires in this test
	log := slog.New(Handler(slog.NewJSONHandler(buf, nil), buf)).With("component", "gateway")
	log.Info("inference request", "n", 1)
	if out.String() != "" {
		t.Fatalf("an info line was written at once: %q", out.String())
	}
	log.Warn("upstream failed", "n", 2)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"n":1`) || !strings.Contains(lines[1], `"n":2`) || !strings.Contains(lines[1], `"component":"gateway"`) {
		t.Fatalf("after a warning: %q", out.String())
	}
	log.Info("inference request", "n", 3)
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"n":3`) {
		t.Errorf("Close did not write the last line: %q", out.String())
	}
}
