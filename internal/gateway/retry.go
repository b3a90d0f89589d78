package gateway

import (
	"time"
)

// This file is the retry policy, kept pure so a table test can check
// every rule: which failures may be retried, how long to wait between
// tries, and the budget that bounds retries per version. Nothing here
// reads a clock or does I/O; callers pass the time in.

// RetryPolicy says when and how the gateway tries a failed upstream call
// again. The zero value takes every default.
type RetryPolicy struct {
	// MaxAttempts bounds the tries of one version for one request, the
	// first included (default 3; 1 turns retries off).
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the wait before retry n (0-based):
	// a uniform draw from [0, min(MaxBackoff, BaseBackoff·2^n)) — "full
	// jitter", so that clients failing together do not retry together
	// (defaults 5 ms and 250 ms).
	BaseBackoff, MaxBackoff time.Duration
	// TryTimeout bounds one attempt's wait for the upstream's response
	// head (default: the gateway's UpstreamTimeout). Once the head is in,
	// only silences are bounded (UpstreamTimeout), so long streams live.
	TryTimeout time.Duration
	// Deadline bounds the time from the first attempt to the start of an
	// answer, over every attempt, backoff and fallback (default: the
	// gateway's UpstreamTimeout). With TryTimeout equal to it — the
	// default — an upstream that hangs is not retried; set TryTimeout
	// lower to retry and fall back after hangs too.
	Deadline time.Duration
	// BudgetRatio caps retries at this fraction of a version's requests
	// over BudgetWindow (default 0.2), and BudgetFloor lets this many
	// retries per second through regardless (default 3), so a version
	// with little traffic can still retry. A version whose every call
	// fails thus gets at most 1 + BudgetRatio times its traffic plus the
	// floor, never MaxAttempts times.
	BudgetRatio  float64
	BudgetFloor  int
	BudgetWindow time.Duration // default 10 s, at most 5 min
	// OpenAIIdempotent marks OpenAI-protocol calls as safe to repeat, so
	// that 502/503/504 answers and broken connections are retried and
	// fall back as Open Inference Protocol calls do. Off by default:
	// generation is not idempotent (it costs tokens and may differ).
	// A request with an Idempotency-Key header is always safe.
	OpenAIIdempotent bool
}

// withDefaults fills the zero fields; upstream is the gateway's
// UpstreamTimeout.
func (p RetryPolicy) withDefaults(upstream time.Duration) RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = 5 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 250 * time.Millisecond
	}
	p.MaxBackoff = max(p.MaxBackoff, p.BaseBackoff)
	if p.TryTimeout <= 0 {
		p.TryTimeout = upstream
	}
	if p.Deadline <= 0 {
		p.Deadline = upstream
	}
	p.TryTimeout = min(p.TryTimeout, p.Deadline) // one try cannot outlast them all
	if p.BudgetRatio <= 0 {
		p.BudgetRatio = 0.2
	}
	if p.BudgetFloor <= 0 {
		p.BudgetFloor = 3
	}
	if p.BudgetWindow < time.Second {
		p.BudgetWindow = 10 * time.Second
	}
	p.BudgetWindow = min(p.BudgetWindow, 5*time.Minute)
	return p
}

// backoff is the wait before retry n (0 for the first retry): full
// jitter over an exponentially growing, capped range. randN returns a
// uniform integer in [0, n).
func (p RetryPolicy) backoff(n int, randN func(int) int) time.Duration {
	ceil := p.MaxBackoff
	if n < 30 { // past 2^30 the cap holds anyway
		ceil = min(p.MaxBackoff, p.BaseBackoff<<n)
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(randN(int(ceil)))
}

// failKind says how an attempt went wrong, which decides whether it may
// be repeated.
type failKind uint8

const (
	// failNone: the attempt produced an answer the client gets.
	failNone failKind = iota
	// failUnsent: the connection failed before the request was written
	// (dial error, refused, reset while sending): the model never saw
	// it, so any request may be tried again.
	failUnsent
	// failNoAnswer: the request was sent, then the connection broke or
	// the answer was not valid HTTP before a complete head or body
	// arrived. The model may have acted on it.
	failNoAnswer
	// failTimeout: no answer head within the per-try timeout.
	failTimeout
	// failStatus: the upstream answered 502, 503 or 504.
	failStatus
	// failFatal: a failure that repeats the same way (egress policy,
	// an answer too large to rewrite, no endpoint).
	failFatal
	// failCanceled: the caller went away; nothing more is done.
	failCanceled
)

// retryable reports whether a failure may be tried again: a request that
// never left is always safe; one the model may have seen only when the
// call is idempotent.
func retryable(k failKind, idempotent bool) bool {
	switch k {
	case failUnsent:
		return true
	case failNoAnswer, failTimeout, failStatus:
		return idempotent
	default: // failNone, failFatal, failCanceled
		return false
	}
}

// retryableStatus is an upstream status worth another try: the gateway
// or load balancer in front of the model, or the model, says it cannot
// answer now.
func retryableStatus(code int) bool {
	return code == 502 || code == 503 || code == 504
}

// retryBudget bounds retries of one version: over the last window
// seconds, retries may reach ratio × requests; beyond that, floor retries
// per second still pass. Buckets are whole seconds, as in the metrics
// windows. The zero value is not usable; see newRetryBudget.
type retryBudget struct {
	ratio   float64
	floor   uint32
	buckets []budgetBucket // ring indexed by second mod len
}

type budgetBucket struct {
	sec               int64
	requests, retries uint32
}

func newRetryBudget(p RetryPolicy) retryBudget {
	return retryBudget{
		ratio:   p.BudgetRatio,
		floor:   uint32(p.BudgetFloor),
		buckets: make([]budgetBucket, int(p.BudgetWindow/time.Second)),
	}
}

// at returns the bucket of second sec, emptied if it held an older one.
func (b *retryBudget) at(sec int64) *budgetBucket {
	n := int64(len(b.buckets))
	k := &b.buckets[((sec%n)+n)%n]
	if k.sec != sec {
		*k = budgetBucket{sec: sec}
	}
	return k
}

// request counts a request sent to the version at second sec.
func (b *retryBudget) request(sec int64) { b.at(sec).requests++ }

// withdraw takes one retry from the budget at second sec, reporting
// whether there was one to take.
func (b *retryBudget) withdraw(sec int64) bool {
	cur := b.at(sec)
	var requests, retries uint64
	for i := range b.buckets {
		k := &b.buckets[i]
		if k.sec > sec-int64(len(b.buckets)) && k.sec <= sec {
			requests += uint64(k.requests)
			retries += uint64(k.retries)
		}
	}
	if float64(retries+1) > b.ratio*float64(requests) && cur.retries >= b.floor {
		return false
	}
	cur.retries++
	return true
}
