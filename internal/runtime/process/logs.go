package process

import (
	"bufio"
	"io"
	"strings"
	"sync"
)

// maxLine bounds one captured line; a server that prints a megabyte
// without a newline is cut, not buffered.
const maxLine = 8 << 10

// ring keeps the last lines a child printed, for Logs and for the errors
// Start returns.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// snapshot returns the kept lines, oldest first.
func (r *ring) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

// tail formats the last n lines for an error message.
func (r *ring) tail(n int) string {
	lines := r.snapshot()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "; it printed nothing"
	}
	return "; its last output:\n    " + strings.Join(lines, "\n    ")
}

// scanLines calls emit for every line read from rd, without its line
// ending; a line longer than max is cut to max bytes and marked with "…".
// It returns when rd does (EOF or a closed pipe).
func scanLines(rd io.Reader, max int, emit func(string)) {
	br := bufio.NewReaderSize(rd, 4096)
	var (
		line []byte
		cut  bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		ended := err == nil // chunk ends in '\n'
		if ended {
			chunk = chunk[:len(chunk)-1]
		}
		room := max - len(line)
		if len(chunk) > room {
			cut = true
			chunk = chunk[:room]
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if ended || len(line) > 0 {
			s := strings.TrimSuffix(string(line), "\r")
			if cut {
				s += "…"
			}
			emit(s)
		}
		line, cut = line[:0], false
		if err != nil {
			return
		}
	}
}
