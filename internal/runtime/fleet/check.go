package fleet

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/runtime/xgboost"
)

// Check returns the registry's push-time check: the runtime options must
// suit the format (and URLs the egress policy), and an xgboost-json model
// must load — an unsupported booster, objective or split is refused here,
// naming the feature, not at deploy.
func Check(policy *egress.Policy) registry.VersionCheck {
	return func(ctx context.Context, v domain.Version, m *artifact.Manifest, read func(context.Context, artifact.File) (io.ReadCloser, error)) error {
		if err := runtime.ValidateOptionsWithPolicy(policy, v.Format, v.RuntimeConfig, m != nil); err != nil {
			return err
		}
		if v.Format != domain.FormatXGBoostJSON || m == nil {
			return nil
		}
		opts, err := runtime.ParseXGBoostJSON(v.RuntimeConfig)
		if err != nil {
			return err
		}
		f, err := ModelFile(*m, opts.ModelFile)
		if err != nil {
			return err
		}
		rc, err := read(ctx, f)
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := xgboost.Load(rc); err != nil {
			return fmt.Errorf("model file %q: %w", f.Path, err)
		}
		return nil
	}
}

// ModelFile picks the XGBoost model file of an artifact: the one named by
// the model_file option, else the artifact's only .json file.
func ModelFile(m artifact.Manifest, name string) (artifact.File, error) {
	if name != "" {
		for _, f := range m.Files {
			if f.Path == name {
				return f, nil
			}
		}
		return artifact.File{}, fmt.Errorf("model_file %q is not in the artifact: %w", name, domain.ErrInvalid)
	}
	var found []artifact.File
	for _, f := range m.Files {
		if strings.EqualFold(path.Ext(f.Path), ".json") {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return artifact.File{}, fmt.Errorf("the artifact has no .json file; an xgboost-json version needs the model saved with Booster.save_model(\"model.json\"): %w", domain.ErrInvalid)
	default:
		return artifact.File{}, fmt.Errorf("the artifact has %d .json files (%s, %s …); name the model with --set model_file=PATH: %w", len(found), found[0].Path, found[1].Path, domain.ErrInvalid)
	}
}
