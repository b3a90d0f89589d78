package sqlstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// benchVersion is a version of realistic size: lineage, a handful of
// metrics and labels.
func benchVersion(model string, i int) domain.Version {
	return domain.Version{
		Model:          model,
		ArtifactDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ArtifactSize:   1 << 20, ArtifactFiles: 3,
		Format:        domain.FormatXGBoostJSON,
		RuntimeConfig: map[string]string{"threads": "4"},
		Lineage: domain.Lineage{
			DatasetURI:    "s3://datasets/fraud/2025-06.parquet",
			DatasetSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			CodeCommit:    "4f9e2c1d", Framework: "xgboost 2.1.1",
			Params: map[string]string{"max_depth": "6", "eta": "0.3"},
		},
		Metrics:   map[string]float64{"auc": 0.91, "precision": 0.88, "recall": 0.83},
		Labels:    map[string]string{"team": fmt.Sprintf("team-%d", i%5), "env": []string{"dev", "staging", "prod"}[i%3], "batch": fmt.Sprint(i / 100)},
		State:     domain.StateRegistered,
		CreatedBy: "bench", CreatedAt: time.Now(),
	}
}

// timed runs op b.N times and reports the median and 99th percentile of
// single operations beside the mean (ns/op).
func timed(b *testing.B, op func() error) {
	b.Helper()
	var durs []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	slices.Sort(durs)
	pct := func(p float64) float64 { return float64(durs[int(p*float64(len(durs)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}

func BenchmarkListVersions(b *testing.B) {
	const total = 10_000
	s := openTemp(b)
	ctx := context.Background()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateModel(ctx, domain.Model{Name: "big", CreatedBy: "bench", CreatedAt: time.Now()}); err != nil {
			return err
		}
		for i := range total {
			if _, err := tx.CreateVersion(ctx, benchVersion("big", i)); err != nil {
				return err
			}
		}
		for _, a := range []struct {
			name string
			v    int
		}{{"champion", 9000}, {"challenger", 9999}, {"staging", 5000}} {
			if err := tx.SetAlias(ctx, domain.Alias{Model: "big", Name: a.name, Version: a.v, UpdatedBy: "bench", UpdatedAt: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	page := func(limit int, f store.VersionFilter) func() error {
		return func() error {
			vs, _, err := s.ListVersions(ctx, "big", f, store.Page{Limit: limit})
			if err == nil && len(vs) == 0 {
				err = fmt.Errorf("empty page")
			}
			return err
		}
	}
	b.Run("page=100", func(b *testing.B) { timed(b, page(100, store.VersionFilter{})) })
	b.Run("page=1000", func(b *testing.B) { timed(b, page(1000, store.VersionFilter{})) })
	b.Run("walk=10000/page=1000", func(b *testing.B) {
		timed(b, func() error {
			n, cursor := 0, ""
			for {
				vs, next, err := s.ListVersions(ctx, "big", store.VersionFilter{}, store.Page{Limit: 1000, Cursor: cursor})
				if err != nil {
					return err
				}
				n += len(vs)
				if next == "" {
					break
				}
				cursor = next
			}
			if n != total {
				return fmt.Errorf("walked %d versions, want %d", n, total)
			}
			return nil
		})
	})
	// A selective filter: team-1 and prod (1 in 15) among 10,000.
	b.Run("filter=2labels/page=100", func(b *testing.B) {
		timed(b, page(100, store.VersionFilter{Labels: map[string]string{"team": "team-1", "env": "prod"}}))
	})
}

func BenchmarkCreateVersion(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.CreateModel(ctx, domain.Model{Name: "m", CreatedBy: "bench", CreatedAt: time.Now()})
	})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	timed(b, func() error {
		i++
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			v, err := tx.CreateVersion(ctx, benchVersion("m", i))
			if err != nil {
				return err
			}
			_, err = tx.AppendAudit(ctx, audit.Entry{
				Time: time.Now(), Actor: "bench", Action: "version.create",
				Subject: fmt.Sprintf("model/m/version/%d", v.Number), After: audit.Document(v),
			})
			return err
		})
	})
}
