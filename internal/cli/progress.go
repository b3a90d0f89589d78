package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line bar on a terminal and nothing otherwise, so
// scripts and CI logs stay quiet.
type progress struct {
	w       io.Writer
	label   string
	total   int64
	n       atomic.Int64
	start   time.Time
	last    time.Time
	enabled bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.enabled = true
	}
	return p
}

func (p *progress) add(n int64) {
	p.n.Add(n)
	if !p.enabled {
		return
	}
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	n := p.n.Load()
	rate := float64(n) / time.Since(p.start).Seconds()
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s (%s/s)   ", p.label, humanBytes(n), humanBytes(int64(rate)))
		return
	}
	const width = 30
	filled := int(float64(width) * float64(n) / float64(p.total))
	filled = min(max(filled, 0), width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s/%s (%s/s)   ", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		100*float64(n)/float64(p.total), humanBytes(n), humanBytes(p.total), humanBytes(int64(rate)))
}

func (p *progress) done() {
	if p.enabled && p.n.Load() > 0 {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func (p *progress) reader(r io.Reader) io.Reader { return progressReader{r, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(int64(n))
	return n, err
}
