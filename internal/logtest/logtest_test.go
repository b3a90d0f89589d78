package logtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestBufferCollectsConcurrentLines(t *testing.T) {
	var b Buffer
	if b.Lines() != nil || b.String() != "" {
		t.Fatal("a new buffer is not empty")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "%d-%d\n", i, j)
			}
		})
	}
	wg.Wait()
	lines := b.Lines()
	if len(lines) != 800 || !slices.Contains(lines, "7-99") || !slices.Contains(lines, "0-0") {
		t.Fatalf("%d lines", len(lines))
	}
}
