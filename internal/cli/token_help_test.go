package cli

import (
	"bytes"
	"strings"
	"testing"
)

// The API token from the environment never shows in help output (CI logs
// keep help text).
func TestHelpDoesNotPrintTheToken(t *testing.T) {
	t.Setenv("SLIPWAY_TOKEN", "slw_do_not_print_me")
	var out, errOut bytes.Buffer
	if code := Main([]string{"model", "list", "--help"}, &out, &errOut, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), "slw_do_not_print_me") {
		t.Errorf("help prints the token:\n%s", out.String())
	}
}
