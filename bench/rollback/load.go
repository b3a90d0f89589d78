package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// answer is one request of the open-loop load as the client saw it.
type answer struct {
	// scheduled, sent and done are offsets from the load's start: when
	// the schedule said the request goes, when it went, and when its
	// answer had been read in full.
	scheduled, sent, done time.Duration
	// version is the X-Slipway-Version of the answer (0 when absent).
	version int
	status  int
	failed  bool // a transport error: no answer at all
}

// openLoad sends requests at a fixed rate whatever the answers do (an
// open loop: a slow answer never delays the next request, so the load
// does not ease off when the system under test struggles, as a closed
// loop's would) and keeps every answer.
type openLoad struct {
	url   string
	body  []byte
	every time.Duration
	hc    *http.Client

	start time.Time
	mu    sync.Mutex
	seen  []answer
	// pending holds the send offsets of the requests not yet answered,
	// by their scheduled offset.
	pending map[time.Duration]time.Duration
	// skipped counts requests not sent because maxInflight were
	// outstanding; stalls are the spans of consecutive skips.
	skipped int
	stalls  []span
	// inflight counts requests sent and not yet answered.
	inflight sync.WaitGroup
}

func newOpenLoad(url string, body []byte, perSecond int) *openLoad {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	tr.DisableCompression = true
	return &openLoad{
		url:     url,
		body:    body,
		every:   time.Second / time.Duration(perSecond),
		hc:      &http.Client{Transport: tr, Timeout: 10 * time.Second},
		start:   time.Now(),
		pending: map[time.Duration]time.Duration{},
	}
}

// maxInflight bounds the requests outstanding at once. On a machine so
// busy that answers take seconds, an unbounded open loop opens thousands
// of connections, each a new dial after a timeout, and the churn keeps
// the system under test from recovering; the requests past the bound are
// counted as skipped instead.
const maxInflight = 512

// run sends until ctx ends, then waits for the answers in flight; call
// it at once after newOpenLoad. The schedule is absolute (request i goes
// at start + i·every): when the sender wakes late it sends every request
// that is due at once.
func (l *openLoad) run(ctx context.Context) {
	next := time.Duration(0)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.inflight.Wait()
			return
		case <-t.C:
		}
		now := time.Since(l.start)
		for next <= now {
			l.mu.Lock()
			full := len(l.pending) >= maxInflight
			if full {
				l.skipped++
				if n := len(l.stalls); n > 0 && next-l.stalls[n-1].to <= 2*l.every {
					l.stalls[n-1].to = next
				} else {
					l.stalls = append(l.stalls, span{next, next})
				}
			} else {
				l.pending[next] = -1 // not yet sent
			}
			l.mu.Unlock()
			if !full {
				l.inflight.Add(1)
				go l.send(next)
			}
			next += l.every
		}
		t.Reset(next - time.Since(l.start))
	}
}

func (l *openLoad) send(scheduled time.Duration) {
	defer l.inflight.Done()
	a := answer{scheduled: scheduled, sent: time.Since(l.start)}
	l.mu.Lock()
	l.pending[scheduled] = a.sent
	l.mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(l.body))
	if err != nil {
		panic(err) // the URL was checked before the load started
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		a.failed = true
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		a.status = resp.StatusCode
		a.version, _ = strconv.Atoi(resp.Header.Get("X-Slipway-Version"))
	}
	a.done = time.Since(l.start)
	l.mu.Lock()
	l.seen = append(l.seen, a)
	delete(l.pending, scheduled)
	l.mu.Unlock()
}

// answeredUpTo reports whether every request sent by t has its answer.
func (l *openLoad) answeredUpTo(t time.Time) bool {
	off := t.Sub(l.start)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sent := range l.pending {
		if sent >= 0 && sent <= off {
			return false
		}
	}
	return true
}

// span is a stretch of the load's schedule.
type span struct{ from, to time.Duration }

// at is the wall-clock time of an offset of the load.
func (l *openLoad) at(d time.Duration) time.Time { return l.start.Add(d) }

// answers returns a copy of the answers so far.
func (l *openLoad) answers() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.seen...)
}
