package gateway

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/metrics"
)

// Idempotency keys. A caller that sends an inference request with an
// Idempotency-Key header may send it again — after a timeout, a broken
// connection, a crash of its own — and get the first answer instead of a
// second call to the model:
//
//   - The key is scoped to the caller (its token, or its address when it
//     has none), the model and the environment: two callers never see
//     each other's answers, and one key may serve several models.
//   - The request is fingerprinted (SHA-256 of method, path and body). The
//     same key with another fingerprint gets 422: the key was reused for
//     a different request, which is a bug in the caller.
//   - While the first request is being answered, the same key gets 409
//     with Retry-After: 1 (as Stripe does) rather than waiting: the
//     caller retrying is often the one whose first connection broke.
//   - An answer is stored — status, Content-Type and body — when its
//     status is below 500 (a 5xx may be retried; 408 and 429 too), the
//     gateway sent it whole, and it fits the per-entry cap. A replay
//     carries Idempotent-Replayed: true and no X-Slipway-Version (no
//     version answered it). Streamed answers are stored when they fit.
//   - Entries expire TTL after the first request (default 24 h). The
//     store is bounded in entries and bytes: past a bound the oldest
//     stored answers are evicted, and when only requests in flight are
//     left a new key is served without protection. An answer over the
//     per-entry cap is not stored, so its key can be used again.
//   - The store is in memory, per gateway process: replicas do not share
//     it, and a restart empties it. Route a caller's retries to the same
//     replica (or accept a second call) when running several.

// HeaderIdempotentReplayed marks an answer replayed from the store.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// IdempotencyPolicy bounds the idempotency store. The zero value takes
// every default.
type IdempotencyPolicy struct {
	// Disabled ignores Idempotency-Key headers (they still make requests
	// safe to retry).
	Disabled bool
	// TTL is how long a key is remembered (default 24 h).
	TTL time.Duration
	// MaxEntries bounds the keys held (default 10,000).
	MaxEntries int
	// MaxBytes bounds the answers' bytes held (default 64 MiB).
	MaxBytes int64
	// MaxEntryBytes is the largest answer stored (default 1 MiB, at most
	// MaxBytes).
	MaxEntryBytes int
}

func (p IdempotencyPolicy) withDefaults() IdempotencyPolicy {
	if p.TTL <= 0 {
		p.TTL = 24 * time.Hour
	}
	if p.MaxEntries <= 0 {
		p.MaxEntries = 10_000
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = 64 << 20
	}
	if p.MaxEntryBytes <= 0 {
		p.MaxEntryBytes = 1 << 20
	}
	p.MaxEntryBytes = int(min(int64(p.MaxEntryBytes), p.MaxBytes))
	return p
}

// maxIdempotencyKey is the longest key accepted, as Stripe's.
const maxIdempotencyKey = 255

// idemEntry is one key: in flight until done.
type idemEntry struct {
	key         string
	fingerprint [sha256.Size]byte
	expires     time.Time
	elem        *list.Element // in order

	done        bool
	status      int
	contentType string
	body        []byte
}

// idempotencyStore holds the keys, oldest first in order (all expire TTL
// after creation, so the oldest is the first to expire).
type idempotencyStore struct {
	p     IdempotencyPolicy
	mu    sync.Mutex
	m     map[string]*idemEntry
	order list.List
	bytes int64
}

func newIdempotencyStore(p IdempotencyPolicy) *idempotencyStore {
	if p.Disabled {
		return nil
	}
	return &idempotencyStore{p: p.withDefaults(), m: map[string]*idemEntry{}}
}

// idemVerdict is what begin found.
type idemVerdict uint8

const (
	idemNew      idemVerdict = iota // the first request with the key: call the model
	idemUntraced                    // the store is full of requests in flight: call the model, keep nothing
	idemReplay                      // answered before: replay
	idemInFlight                    // the first is being answered
	idemMismatch                    // used with another request
)

// begin looks a key up at now, creating its in-flight entry when it is
// new. For idemReplay it returns a copy of the stored answer.
func (s *idempotencyStore) begin(key string, fp [sha256.Size]byte, now time.Time) (idemVerdict, *idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if e := s.m[key]; e != nil {
		switch {
		case e.fingerprint != fp:
			return idemMismatch, nil
		case !e.done:
			return idemInFlight, nil
		}
		return idemReplay, &idemEntry{status: e.status, contentType: e.contentType, body: e.body}
	}
	for len(s.m) >= s.p.MaxEntries {
		if !s.evictOldestDone(nil) {
			return idemUntraced, nil
		}
	}
	e := &idemEntry{key: key, fingerprint: fp, expires: now.Add(s.p.TTL)}
	e.elem = s.order.PushBack(e)
	s.m[key] = e
	return idemNew, e
}

// complete stores the answer of e, or forgets e when store is false or
// the answer does not fit.
func (s *idempotencyStore) complete(e *idemEntry, store bool, status int, contentType string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[e.key] != e {
		return // expired or evicted meanwhile
	}
	n := int64(len(body))
	if !store || n > int64(s.p.MaxEntryBytes) {
		s.remove(e)
		return
	}
	for s.bytes+n > s.p.MaxBytes {
		if !s.evictOldestDone(e) {
			s.remove(e)
			return
		}
	}
	e.done, e.status, e.contentType, e.body = true, status, contentType, bytes.Clone(body)
	s.bytes += n
}

// expire drops the entries whose time has passed, in flight or not (a
// request in flight for a whole TTL has lost its claim).
func (s *idempotencyStore) expire(now time.Time) {
	for f := s.order.Front(); f != nil; f = s.order.Front() {
		e := f.Value.(*idemEntry)
		if now.Before(e.expires) {
			return
		}
		s.remove(e)
	}
}

// evictOldestDone drops the oldest stored answer other than keep,
// reporting false when there is none (only requests in flight).
func (s *idempotencyStore) evictOldestDone(keep *idemEntry) bool {
	for f := s.order.Front(); f != nil; f = f.Next() {
		if e := f.Value.(*idemEntry); e.done && e != keep {
			s.remove(e)
			return true
		}
	}
	return false
}

func (s *idempotencyStore) remove(e *idemEntry) {
	s.order.Remove(e.elem)
	delete(s.m, e.key)
	if e.done {
		s.bytes -= int64(len(e.body))
	}
}

// size is the number of keys and stored bytes, for tests.
func (s *idempotencyStore) size() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m), s.bytes
}

// validIdempotencyKey accepts 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotentCall is a request's claim on its key.
type idempotentCall struct {
	e   *idemEntry
	cap *capture
}

// beginIdempotent applies the key of a routed inference request. It
// returns the claim to finish with endIdempotent (nil when nothing will
// be stored), or false when it answered the request itself: 400 for a
// bad key, a replay, 409 or 422.
func (x *exchange) beginIdempotent(key string) (*idempotentCall, bool) {
	s := x.g.idem
	if !validIdempotencyKey(key) {
		x.fail(http.StatusBadRequest, "invalid_idempotency_key", fmt.Sprintf("header %s must be 1 to %d printable ASCII characters", HeaderIdempotencyKey, maxIdempotencyKey))
		return nil, false
	}
	h := sha256.New()
	h.Write([]byte(x.r.Method))
	h.Write([]byte{0})
	h.Write([]byte(x.r.URL.Path))
	h.Write([]byte{0})
	h.Write(x.body)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	scope := "t"
	if x.lim.caller.anonymous {
		scope = "a"
	}
	scoped := scope + x.lim.caller.id + "\x00" + x.model + "\x00" + x.env + "\x00" + key
	verdict, e := s.begin(scoped, fp, x.g.clock.Now())
	if verdict != idemNew && verdict != idemUntraced {
		x.version = nil // answered by no version: not counted in one's metrics
	}
	switch verdict {
	case idemNew:
		return &idempotentCall{e: e, cap: x.startCapture(s.p.MaxEntryBytes)}, true
	case idemUntraced:
		return nil, true
	case idemReplay:
		x.g.metrics.ObserveIdempotentReplay(x.model, x.env)
		hd := x.w.Header()
		if e.contentType != "" {
			hd.Set("Content-Type", e.contentType)
		}
		hd.Set(HeaderIdempotentReplayed, "true")
		hd.Set("Content-Length", strconv.Itoa(len(e.body)))
		x.w.WriteHeader(e.status)
		_, _ = x.w.Write(e.body)
	case idemInFlight:
		x.g.metrics.ObserveIdempotencyConflict(x.model, x.env, metrics.IdempotencyInFlight)
		x.w.Header().Set("Retry-After", "1")
		x.fail(http.StatusConflict, "idempotency_key_in_use", fmt.Sprintf("a request with this %s is still being answered; retry in 1s to get its answer", HeaderIdempotencyKey))
	case idemMismatch:
		x.g.metrics.ObserveIdempotencyConflict(x.model, x.env, metrics.IdempotencyMismatch)
		x.fail(http.StatusUnprocessableEntity, "idempotency_key_reused", fmt.Sprintf("this %s was used with a different request (method, path or body); use a new key for a new request", HeaderIdempotencyKey))
	}
	return nil, false
}

// endIdempotent stores the answer of a claimed key, or gives the key up
// when the request did not complete (a panic, a refusal), failed with a
// 5xx, 408 or 429, was cut off, or is over the cap.
func (x *exchange) endIdempotent(c *idempotentCall, completed bool) {
	if c == nil {
		return
	}
	status := x.w.status
	body, whole := c.cap.bytes()
	store := completed && whole && x.status == 0 && status != 0 && status < 500 &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
	x.g.idem.complete(c.e, store, status, x.w.Header().Get("Content-Type"), body)
}

// infer serves a routed inference request: the caller's rate limit, its
// idempotency key, the deployment's rate limit, then the call.
func (x *exchange) infer() {
	if !x.callerWithinRate() {
		return
	}
	key := x.r.Header.Get(HeaderIdempotencyKey)
	if key == "" || x.g.idem == nil {
		if x.modelWithinRate() {
			x.call(x.w)
		}
		return
	}
	c, ok := x.beginIdempotent(key)
	if !ok {
		return
	}
	completed := false
	defer func() { x.endIdempotent(c, completed) }()
	if !x.modelWithinRate() {
		return
	}
	x.call(x.w)
	completed = true
}
