// Package logbuf owns the batching of log output: a writer that holds
// log lines in memory and writes them out every interval, when its
// buffer fills, or at once after a warning or an error, as nginx's
// `access_log ... buffer= flush=` does. The inference gateway writes one
// access-log line per request, and a write system call per line cost
// about a twentieth of its CPU under load. It imports the standard
// library only.
package logbuf

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Writer buffers log lines for another writer. Lines keep their order;
// Close writes what is left. It is safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// New buffers up to size bytes for out and writes them out at least
// every interval.
func New(out io.Writer, size int, interval time.Duration) *Writer {
	b := &Writer{w: bufio.NewWriterSize(out, size), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes the buffered lines.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the periodic writes and writes what is left.
func (b *Writer) Close() error {
	close(b.stop)
	<-b.done
	return b.Flush()
}

// Handler wraps h, which writes to w, so that every record at warning
// level or above is written out at once, with the lines before it:
// what needs attention is never held back.
func Handler(h slog.Handler, w *Writer) slog.Handler {
	return flushOnWarn{h, w}
}

type flushOnWarn struct {
	slog.Handler
	w *Writer
}

func (h flushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushOnWarn) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushOnWarn{h.Handler.WithAttrs(attrs), h.w}
}

func (h flushOnWarn) WithGroup(name string) slog.Handler {
	return flushOnWarn{h.Handler.WithGroup(name), h.w}
}
