package api_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// reportPercentiles adds p50 and p99 of the per-iteration durations.
func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	pick := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pick(0.50), "p50-ms")
	b.ReportMetric(pick(0.99), "p99-ms")
}

// seedVersions registers n versions of model m directly in the store, in
// batches, each with an audit entry, as pushes would.
func seedVersions(b *testing.B, h *harness, m string, n int) {
	ctx := context.Background()
	for done := 0; done < n; {
		err := h.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for i := 0; i < 1000 && done < n; i++ {
				v, err := tx.CreateVersion(ctx, domain.Version{
					Model: m, Format: domain.FormatExternal, State: domain.StateRegistered,
					RuntimeConfig: map[string]string{"url": "http://127.0.0.1:9000"},
					Metrics:       map[string]float64{"auc": 0.9 + float64(i%100)/1000},
					Labels:        map[string]string{"team": fmt.Sprint("t", i%5), "run": fmt.Sprint(done)},
					CreatedBy:     "bench", CreatedAt: time.Now().UTC(),
				})
				if err != nil {
					return err
				}
				if _, err := tx.AppendAudit(ctx, audit.Entry{Time: v.CreatedAt, Actor: "bench", Action: "version.create",
					Subject: fmt.Sprintf("model/%s/version/%d", m, v.Number), After: audit.Document(v)}); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListVersionsHTTP lists versions of a model with 10,000 of them
// through the real HTTP stack (auth, JSON, SQLite).
func BenchmarkListVersionsHTTP(b *testing.B) {
	h := newHarness(b)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	seedVersions(b, h, "m", 10_000)
	for _, c := range []struct {
		name  string
		limit int
		walk  bool
	}{{"page100", 100, false}, {"page1000", 1000, false}, {"all10000", 1000, true}} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				cursor, items := "", 0
				for {
					r := h.call(http.MethodGet, fmt.Sprintf("/api/v1/models/m/versions?limit=%d&cursor=%s", c.limit, cursor), h.admin, nil)
					if r.status != http.StatusOK {
						b.Fatalf("status %d", r.status)
					}
					l := decode[api.List[domain.Version]](h.t, r)
					items += len(l.Items)
					if !c.walk || l.NextCursor == "" {
						break
					}
					cursor = l.NextCursor
				}
				if (c.walk && items != 10_000) || (!c.walk && items != c.limit) {
					b.Fatalf("listed %d versions", items)
				}
				ds = append(ds, time.Since(start))
			}
			reportPercentiles(b, ds)
		})
	}
}

// BenchmarkPushVersionHTTP uploads a small artifact and registers it as a
// version: HEAD, PUT, POST through the real HTTP stack, fsync included.
func BenchmarkPushVersionHTTP(b *testing.B) {
	h := newHarness(b)
	h.mustCall(http.MethodPost, "/api/v1/models", h.admin, api.ModelRequest{Name: "m"}, http.StatusCreated)
	var ds []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		h.pushVersion("m", []byte(fmt.Sprintf(`{"weights":%d}`, i)), map[string]string{"i": fmt.Sprint(i)})
		ds = append(ds, time.Since(start))
	}
	reportPercentiles(b, ds)
}

// BenchmarkUploadBlobHTTP streams a 256 MiB artifact file through PUT
// /api/v1/blobs (HTTP, hashing, temp file, fsync, rename): the server half
// of `slipway version push`. Each iteration uploads new content.
func BenchmarkUploadBlobHTTP(b *testing.B) {
	h := newHarness(b, func(c *api.Config) { c.MaxBlobBytes = 1 << 30 })
	content := make([]byte, 256<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for j := 0; j+8 <= len(content); j += 8 {
		binary.LittleEndian.PutUint64(content[j:], rng.Uint64())
	}
	b.SetBytes(int64(len(content)))
	i := uint64(0)
	for b.Loop() {
		b.StopTimer()
		i++
		binary.LittleEndian.PutUint64(content, i)
		digest := artifact.DigestOf(content)
		b.StartTimer()
		h.mustCall(http.MethodPut, "/api/v1/blobs/"+digest, h.admin, content, http.StatusCreated)
	}
}
