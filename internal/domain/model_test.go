package domain

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestLineageValidate(t *testing.T) {
	tests := []struct {
		name string
		l    Lineage
		ok   bool
	}{
		{"empty", Lineage{}, true},
		{"full", Lineage{
			DatasetURI: "s3://bucket/train.parquet", DatasetSHA256: hex64, CodeCommit: "abc1234",
			Params: map[string]string{"max_depth": "6"}, Framework: "xgboost 2.1",
			Dependencies: map[string]string{"numpy": "2.0"}, ParentVersion: 3,
		}, true},
		{"uri without sha", Lineage{DatasetURI: "s3://b/k"}, true},
		{"commit 7 hex", Lineage{CodeCommit: "deadbee"}, true},
		{"commit 40 upper hex", Lineage{CodeCommit: strings.ToUpper(hex64[:40])}, true},
		{"commit 64 hex", Lineage{CodeCommit: hex64}, true},
		{"uri 2048 bytes", Lineage{DatasetURI: strings.Repeat("u", 2048)}, true},
		{"framework 256 bytes", Lineage{Framework: strings.Repeat("f", 256)}, true},

		{"sha without uri", Lineage{DatasetSHA256: hex64}, false},
		{"sha upper case", Lineage{DatasetURI: "x", DatasetSHA256: strings.ToUpper(hex64)}, false},
		{"sha 63 digits", Lineage{DatasetURI: "x", DatasetSHA256: hex64[:63]}, false},
		{"sha 65 digits", Lineage{DatasetURI: "x", DatasetSHA256: hex64 + "0"}, false},
		{"sha non hex", Lineage{DatasetURI: "x", DatasetSHA256: "g" + hex64[1:]}, false},
		{"uri 2049 bytes", Lineage{DatasetURI: strings.Repeat("u", 2049)}, false},
		{"commit 6 hex", Lineage{CodeCommit: "abc123"}, false},
		{"commit 65 hex", Lineage{CodeCommit: hex64 + "a"}, false},
		{"commit non hex", Lineage{CodeCommit: "main-branch"}, false},
		{"framework 257 bytes", Lineage{Framework: strings.Repeat("f", 257)}, false},
		{"negative parent", Lineage{ParentVersion: -1}, false},
		{"bad param key", Lineage{Params: map[string]string{"a=b": "1"}}, false},
		{"bad dependency key", Lineage{Dependencies: map[string]string{"": "1"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValidateKeyValues(t *testing.T) {
	many := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name string
		kv   map[string]string
		ok   bool
	}{
		{"nil", nil, true},
		{"simple", map[string]string{"team": "risk", "tier": ""}, true},
		{"punctuation key", map[string]string{"app.kubernetes.io/name": "x", "a:b;c!~": "y"}, true},
		{"key 128 bytes", map[string]string{strings.Repeat("k", 128): "v"}, true},
		{"value 4096 bytes", map[string]string{"k": strings.Repeat("v", 4096)}, true},
		{"value with anything", map[string]string{"k": "a = b, c\n\x00é"}, true},
		{"256 entries", many(256), true},

		{"empty key", map[string]string{"": "v"}, false},
		{"key 129 bytes", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"key with space", map[string]string{"a b": "v"}, false},
		{"key with equals", map[string]string{"a=b": "v"}, false},
		{"key with comma", map[string]string{"a,b": "v"}, false},
		{"key with tab", map[string]string{"a\tb": "v"}, false},
		{"key with DEL", map[string]string{"a\x7f": "v"}, false},
		{"key with unicode", map[string]string{"clé": "v"}, false},
		{"value 4097 bytes", map[string]string{"k": strings.Repeat("v", 4097)}, false},
		{"257 entries", many(257), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKeyValues("label", tt.kv)
			if tt.ok && err != nil {
				t.Fatalf("ValidateKeyValues() = %v, want nil", err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ValidateKeyValues() = %v, want ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), "label") {
					t.Fatalf("error %q does not name the kind", err)
				}
			}
		})
	}
}

func TestValidateMetrics(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]float64
		ok   bool
	}{
		{"nil", nil, true},
		{"finite", map[string]float64{"auc": 0.91, "loss": -1e300, "zero": 0, "tiny": math.SmallestNonzeroFloat64, "max": math.MaxFloat64}, true},
		{"NaN", map[string]float64{"auc": math.NaN()}, false},
		{"+Inf", map[string]float64{"auc": math.Inf(1)}, false},
		{"-Inf", map[string]float64{"loss": math.Inf(-1)}, false},
		{"one bad among good", map[string]float64{"a": 1, "b": 2, "c": math.NaN()}, false},
		{"bad key", map[string]float64{"a b": 1}, false},
		{"empty key", map[string]float64{"": 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateMetrics(tt.m)
			if tt.ok && err != nil {
				t.Fatalf("ValidateMetrics() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateMetrics() = %v, want ErrInvalid", err)
			}
		})
	}
	big := make(map[string]float64, 257)
	for i := range 257 {
		big[fmt.Sprintf("m%d", i)] = 1
	}
	if err := ValidateMetrics(big); !errors.Is(err, ErrInvalid) {
		t.Fatalf("257 metrics: %v, want ErrInvalid", err)
	}
	delete(big, "m0")
	if err := ValidateMetrics(big); err != nil {
		t.Fatalf("256 metrics: %v, want nil", err)
	}
}

func TestIsHexSHA256(t *testing.T) {
	for s, want := range map[string]bool{
		hex64:                  true,
		strings.ToUpper(hex64): false,
		hex64[:63]:             false,
		hex64 + "0":            false,
		"":                     false,
		"z" + hex64[1:]:        false,
		"sha256:" + hex64[:57]: false,
	} {
		if got := IsHexSHA256(s); got != want {
			t.Errorf("IsHexSHA256(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestModelValidate(t *testing.T) {
	ok := Model{Name: "fraud-scorer", Description: "d", Owner: "risk", Tags: map[string]string{"team": "risk"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for name, m := range map[string]Model{
		"bad name":         {Name: "Fraud"},
		"long description": {Name: "m", Description: strings.Repeat("d", 4097)},
		"long owner":       {Name: "m", Owner: strings.Repeat("o", 257)},
		"bad tag":          {Name: "m", Tags: map[string]string{"a=b": ""}},
	} {
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
}

func TestVersionValidateNew(t *testing.T) {
	base := Version{Model: "m", Format: FormatXGBoostJSON, ArtifactDigest: "sha256:" + hex64}
	if err := base.ValidateNew(); err != nil {
		t.Fatalf("ValidateNew() = %v", err)
	}
	ext := Version{Model: "m", Format: FormatExternal}
	if err := ext.ValidateNew(); err != nil {
		t.Fatalf("external version without artifact: %v", err)
	}
	mutate := map[string]func(*Version){
		"bad model":          func(v *Version) { v.Model = "M" },
		"bad format":         func(v *Version) { v.Format = "onnx" },
		"missing artifact":   func(v *Version) { v.ArtifactDigest = "" },
		"bad runtime option": func(v *Version) { v.RuntimeConfig = map[string]string{"a b": ""} },
		"bad lineage":        func(v *Version) { v.Lineage.ParentVersion = -2 },
		"NaN metric":         func(v *Version) { v.Metrics = map[string]float64{"auc": math.NaN()} },
		"bad label":          func(v *Version) { v.Labels = map[string]string{"": ""} },
	}
	for name, fn := range mutate {
		v := base
		fn(&v)
		if err := v.ValidateNew(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ValidateNew() = %v, want ErrInvalid", name, err)
		}
	}
}
