package fleet

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/runtime/external"
	"github.com/slipway-ml/slipway/internal/runtime/process"
	"github.com/slipway-ml/slipway/internal/runtime/xgboost"
)

// FactoryConfig is what the production factory needs.
type FactoryConfig struct {
	Policy *egress.Policy
	Log    *slog.Logger
	// MaxBodyBytes caps an in-process infer request.
	MaxBodyBytes int64
}

// NewFactory returns the factory that picks a runtime by format: an
// explicit switch, no registration.
func NewFactory(c FactoryConfig) Factory {
	return func(v domain.Version, dir string) (runtime.Runtime, error) {
		switch v.Format {
		case domain.FormatXGBoostJSON:
			opts, err := runtime.ParseXGBoostJSON(v.RuntimeConfig)
			if err != nil {
				return nil, err
			}
			file, err := modelFileIn(dir, opts.ModelFile)
			if err != nil {
				return nil, err
			}
			return xgboost.NewServer(xgboost.ServerConfig{Model: v.Model, Version: v.Number, Path: file, MaxBodyBytes: c.MaxBodyBytes}), nil
		case domain.FormatProcess:
			opts, err := runtime.ParseProcess(v.RuntimeConfig)
			if err != nil {
				return nil, err
			}
			return c.process(v, dir, opts), nil
		case domain.FormatExternal:
			opts, err := runtime.ParseExternal(v.RuntimeConfig)
			if err != nil {
				return nil, err
			}
			return external.New(external.Config{ModelName: v.Model, Options: opts, Policy: c.Policy}), nil
		case domain.FormatOpenAI:
			opts, err := runtime.ParseOpenAI(v.RuntimeConfig)
			if err != nil {
				return nil, err
			}
			if opts.Process != nil {
				return c.process(v, dir, *opts.Process), nil
			}
			return external.New(external.Config{ModelName: v.Model, Options: *opts.External, Policy: c.Policy}), nil
		default:
			return nil, fmt.Errorf("format %q has no runtime: %w", v.Format, domain.ErrInvalid)
		}
	}
}

func (c FactoryConfig) process(v domain.Version, dir string, opts runtime.ProcessOptions) runtime.Runtime {
	return process.New(process.Config{ModelName: v.Model, Version: v.Number, ArtifactDir: dir, Options: opts, Log: c.Log})
}

// modelFileIn finds the model file in an unpacked artifact: the named one,
// else the only .json file (the same rule as ModelFile at push).
func modelFileIn(dir, name string) (string, error) {
	if name != "" {
		return filepath.Join(dir, filepath.FromSlash(name)), nil
	}
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".json") {
			found = append(found, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", fmt.Errorf("the artifact has %d .json files; name the model with --set model_file=PATH: %w", len(found), domain.ErrInvalid)
	}
	return found[0], nil
}
