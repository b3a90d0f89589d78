package artifact

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkIngest measures Put of a 1 GiB file into a Local store: read,
// hash, write, fsync and rename, the whole server-side cost of an upload.
// It needs SLIPWAY_BENCH_LARGE=1 and is skipped with -short; bench/ingest.sh
// runs it and compares it with sha256sum on the same machine.
func BenchmarkIngest(b *testing.B) {
	if os.Getenv("SLIPWAY_BENCH_LARGE") != "1" || testing.Short() {
		b.Skip("set SLIPWAY_BENCH_LARGE=1 (and drop -short) to ingest 1 GiB per iteration")
	}
	benchIngest(b, 1<<30)
}

// BenchmarkIngest64MiB is the same measurement at a size that always runs.
func BenchmarkIngest64MiB(b *testing.B) {
	benchIngest(b, 64<<20)
}

func benchIngest(b *testing.B, size int64) {
	src, digest := writeRandomFile(b, b.TempDir(), size)
	storeRoot := b.TempDir()
	ctx := context.Background()
	b.SetBytes(size)
	for b.Loop() {
		// A fresh store each time, so every iteration really writes.
		b.StopTimer()
		dir := filepath.Join(storeRoot, "store")
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		l, err := OpenLocal(dir)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := l.Put(ctx, digest, size, f)
		b.StopTimer()
		f.Close()
		if err != nil || n != size {
			b.Fatalf("Put = %d, %v", n, err)
		}
		b.StartTimer()
	}
}

// writeRandomFile writes size bytes from a seeded PCG (fast, repeatable; no
// crypto/rand) and returns the path and digest.
func writeRandomFile(b *testing.B, dir string, size int64) (string, string) {
	b.Helper()
	p := filepath.Join(dir, "artifact.bin")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), copyBuf)
	r := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, 64<<10)
	for left := size; left > 0; left -= int64(len(chunk)) {
		for i := 0; i < len(chunk); i += 8 {
			binary.LittleEndian.PutUint64(chunk[i:], r.Uint64())
		}
		n := min(left, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return p, "sha256:" + hex.EncodeToString(h.Sum(nil))
}
