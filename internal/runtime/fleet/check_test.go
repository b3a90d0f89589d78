package fleet

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

func TestCheckAppliesTheEgressAllowlist(t *testing.T) {
	allow, err := egress.ParseAllow("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	check := Check(&egress.Policy{Allow: allow})
	ext := func(url string) domain.Version {
		return domain.Version{Model: "m", Format: domain.FormatExternal,
			RuntimeConfig: map[string]string{"url": url, "protocol": "oip-v2"}}
	}
	if err := check(t.Context(), ext("http://10.1.2.3:8000"), nil, nil); err != nil {
		t.Fatalf("allowed network refused: %v", err)
	}
	for _, url := range []string{"http://127.0.0.1:9000", "http://169.254.169.254/", "http://192.168.1.1/"} {
		if err := check(t.Context(), ext(url), nil, nil); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: %v, want a refusal", url, err)
		}
	}
	// The default policy allows loopback only.
	if err := Check(egress.Default())(t.Context(), ext("http://127.0.0.1:9000"), nil, nil); err != nil {
		t.Fatalf("loopback refused by the default policy: %v", err)
	}
}

func TestCheckLoadsTheXGBoostModel(t *testing.T) {
	m := &artifact.Manifest{Files: []artifact.File{{Path: "model.json", Size: 2, SHA256: strings.Repeat("a", 64)}}}
	v := domain.Version{Model: "m", Format: domain.FormatXGBoostJSON}
	err := Check(egress.Default())(t.Context(), v, m, func(context.Context, artifact.File) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(`{"learner":{"gradient_booster":{"name":"gblinear"}}}`)), nil
	})
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "model.json") {
		t.Fatalf("Check of a non-tree model = %v", err)
	}
	two := &artifact.Manifest{Files: []artifact.File{{Path: "a.json"}, {Path: "b.json"}}}
	if _, err := ModelFile(*two, ""); err == nil || !strings.Contains(err.Error(), "model_file") {
		t.Fatalf("two json files: %v", err)
	}
	if f, err := ModelFile(*two, "b.json"); err != nil || f.Path != "b.json" {
		t.Fatalf("named model file: %v %v", f, err)
	}
}
