package requestid

import (
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	for _, ok := range []string{"abc", "req-1_2.3", strings.Repeat("a", 64)} {
		if got := From(ok); got != ok {
			t.Errorf("From(%q) = %q, want it kept", ok, got)
		}
	}
	for _, bad := range []string{"", "has space", "new\nline", strings.Repeat("a", 65), "ünï"} {
		got := From(bad)
		if got == bad || !Valid(got) || len(got) != 16 {
			t.Errorf("From(%q) = %q, want a fresh valid ID", bad, got)
		}
	}
	if New() == New() {
		t.Error("two new IDs are equal")
	}
}
