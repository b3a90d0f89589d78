package gateway

import (
	"testing"
	"time"
)

func TestRetryableTable(t *testing.T) {
	kinds := []struct {
		kind                  failKind
		plain, idempotentCall bool
	}{
		{failNone, false, false},
		{failUnsent, true, true}, // the model never saw it: always safe
		{failNoAnswer, false, true},
		{failTimeout, false, true},
		{failStatus, false, true},
		{failFatal, false, false},
		{failCanceled, false, false},
	}
	for _, k := range kinds {
		if got := retryable(k.kind, false); got != k.plain {
			t.Errorf("retryable(%d, not idempotent) = %v, want %v", k.kind, got, k.plain)
		}
		if got := retryable(k.kind, true); got != k.idempotentCall {
			t.Errorf("retryable(%d, idempotent) = %v, want %v", k.kind, got, k.idempotentCall)
		}
	}
	for code, want := range map[int]bool{200: false, 400: false, 429: false, 500: false, 501: false, 502: true, 503: true, 504: true, 505: false} {
		if retryableStatus(code) != want {
			t.Errorf("retryableStatus(%d) = %v", code, !want)
		}
	}
}

func TestRetryPolicyDefaults(t *testing.T) {
	p := RetryPolicy{}.withDefaults(30 * time.Second)
	want := RetryPolicy{MaxAttempts: 3, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 250 * time.Millisecond,
		TryTimeout: 30 * time.Second, Deadline: 30 * time.Second, BudgetRatio: 0.2, BudgetFloor: 3, BudgetWindow: 10 * time.Second}
	if p != want {
		t.Errorf("defaults %+v, want %+v", p, want)
	}
	p = RetryPolicy{BaseBackoff: time.Second, MaxBackoff: time.Millisecond, BudgetWindow: time.Hour, TryTimeout: time.Minute}.withDefaults(time.Second)
	if p.TryTimeout != time.Second {
		t.Errorf("a try outlasts the deadline: %v", p.TryTimeout)
	}
	if p.MaxBackoff != time.Second || p.BudgetWindow != 5*time.Minute {
		t.Errorf("a cap below the base is raised to it and the window capped: %+v", p)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	p := RetryPolicy{}.withDefaults(time.Second) // 5 ms base, 250 ms cap
	top := func(n int) int { return n - 1 }
	bottom := func(int) int { return 0 }
	ceilings := []time.Duration{5, 10, 20, 40, 80, 160, 250, 250, 250}
	for n, c := range ceilings {
		c *= time.Millisecond
		if got := p.backoff(n, top); got != c-1 {
			t.Errorf("retry %d: largest backoff %v, want just under %v", n, got, c)
		}
		if got := p.backoff(n, bottom); got != 0 {
			t.Errorf("retry %d: smallest backoff %v, want 0 (full jitter)", n, got)
		}
	}
	if got := p.backoff(200, top); got != p.MaxBackoff-1 {
		t.Errorf("a huge retry number overflows: %v", got)
	}
	// A real source stays within [0, ceiling) and spreads over it.
	r := seededRand(7)
	var lo, hi int
	for range 2000 {
		d := p.backoff(3, r)
		if d < 0 || d >= 40*time.Millisecond {
			t.Fatalf("backoff %v outside [0, 40ms)", d)
		}
		if d < 10*time.Millisecond {
			lo++
		}
		if d >= 30*time.Millisecond {
			hi++
		}
	}
	if lo < 300 || hi < 300 {
		t.Errorf("jitter is not spread: %d in the lowest quarter, %d in the highest", lo, hi)
	}
}

func TestRetryBudget(t *testing.T) {
	p := RetryPolicy{BudgetRatio: 0.2, BudgetFloor: 3, BudgetWindow: 10 * time.Second}.withDefaults(time.Second)
	t.Run("floor with no traffic", func(t *testing.T) {
		b := newRetryBudget(p)
		got := 0
		for range 10 {
			if b.withdraw(100) {
				got++
			}
		}
		if got != 3 {
			t.Errorf("%d retries in one second with no requests, want the floor of 3", got)
		}
		if !b.withdraw(101) {
			t.Error("the floor is per second: the next second retries again")
		}
	})
	t.Run("ratio of the window", func(t *testing.T) {
		b := newRetryBudget(p)
		for range 100 {
			b.request(100)
		}
		got := 0
		for range 100 {
			if b.withdraw(100) {
				got++
			}
		}
		if got != 20 {
			t.Errorf("%d retries for 100 requests, want 20", got)
		}
	})
	t.Run("a failing fleet gets at most ratio plus floor", func(t *testing.T) {
		b := newRetryBudget(p)
		attempts := 0
		const requests = 1000
		for i := range requests {
			sec := int64(100 + i/100) // 100 requests a second for 10 s
			b.request(sec)
			attempts++
			for range 2 { // each wants two retries
				if !b.withdraw(sec) {
					break
				}
				attempts++
			}
		}
		if limit := requests + requests/5 + 3*10; attempts > limit || attempts < requests+requests/5 {
			t.Errorf("%d attempts for %d requests, want between 1.2× and 1.2× + floor (%d)", attempts, requests, limit)
		}
	})
	t.Run("old seconds leave the window", func(t *testing.T) {
		b := newRetryBudget(p)
		for range 100 {
			b.request(100)
		}
		for range 20 {
			b.withdraw(100)
		}
		if b.withdraw(105) && b.withdraw(105) && b.withdraw(105) && b.withdraw(105) {
			t.Error("the ratio was spent within the window, yet more than the floor passed")
		}
		// Ten seconds later the requests and retries of second 100 are gone.
		for range 10 {
			b.request(110)
		}
		got := 0
		for range 10 {
			if b.withdraw(110) {
				got++
			}
		}
		if got != 3 {
			t.Errorf("%d retries after the window moved on, want the floor of 3 (second 105's retries still count)", got)
		}
	})
}
