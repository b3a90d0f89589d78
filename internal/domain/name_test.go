package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"fraud-scorer", true},
		{"fraud_scorer.v2", true},
		{"9lives", true},
		{"a-", true},
		{"a.", true},
		{"a..b", true},
		{strings.Repeat("a", 63), true},
		{"0" + strings.Repeat("-", 62), true},

		{"", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a", 1000), false},
		{"Fraud", false},
		{"fraudScorer", false},
		{"-lead", false},
		{".hidden", false},
		{"_under", false},
		{"has space", false},
		{"tab\t", false},
		{"newline\n", false},
		{"trailing-newline\n", false},
		{"slash/name", false},
		{"colon:name", false},
		{"café", false},
		{"ünïcode", false},
		{"名前", false},
		{"a\x00b", false},
		{"\xff", false},
		{"a+b", false},
	}
	for _, tt := range tests {
		err := ValidateName("model", tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok {
			if err == nil {
				t.Errorf("ValidateName(%q) = nil, want an error", tt.name)
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("ValidateName(%q) = %v, want it to wrap ErrInvalid", tt.name, err)
			}
		}
	}
}

func TestValidateNameMessageNamesKind(t *testing.T) {
	err := ValidateName("alias", "Bad")
	if err == nil || !strings.Contains(err.Error(), "alias name") || !strings.Contains(err.Error(), `"Bad"`) {
		t.Fatalf("ValidateName(alias, Bad) = %v, want a message naming the alias and the value", err)
	}
	// A huge name is truncated in the message, not echoed whole.
	err = ValidateName("model", strings.Repeat("X", 10_000))
	if err == nil || len(err.Error()) > 500 {
		t.Fatalf("error for a 10000-byte name is %d bytes; want it truncated", len(err.Error()))
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		got, err := ParseFormat(string(f))
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	for _, s := range []string{"", "XGBoost-json", "xgboost", "onnx", " process", "process "} {
		if _, err := ParseFormat(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFormat(%q) = %v, want ErrInvalid", s, err)
		}
	}
	if !FormatXGBoostJSON.NeedsArtifact() || FormatExternal.NeedsArtifact() || FormatOpenAI.NeedsArtifact() || FormatProcess.NeedsArtifact() {
		t.Error("only xgboost-json needs an artifact")
	}
}

func TestParseState(t *testing.T) {
	for _, s := range States {
		got, err := ParseState(string(s))
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "Production", "prod", "deleted", "registered\n"} {
		if _, err := ParseState(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseState(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		got, err := ParseRole(string(r))
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "superuser", "viewer "} {
		if _, err := ParseRole(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRole(%q) = %v, want ErrInvalid", s, err)
		}
	}
}
