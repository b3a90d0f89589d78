package domain

import (
	"fmt"
	"math"
	"time"
)

// Fault is what the gateway injects into one served version's requests,
// for chaos tests and demos: a share of them delayed, a share answered
// with an error status without calling the model. It is a deliberate
// failure, so the service refuses it in environments the operator has
// not allowed (the server's --fault-injection-envs), and every change is
// audited. A request may be both delayed and aborted: the delay comes
// first.
type Fault struct {
	// AbortPercent of the requests, from 0 to 100, are answered with
	// AbortStatus (from 400 to 599, default 503).
	AbortPercent float64 `json:"abort_percent,omitempty"`
	AbortStatus  int     `json:"abort_status,omitempty"`
	// DelayPercent of the requests, from 0 to 100, wait Delay (above 0,
	// at most MaxFaultDelay) before they go on.
	DelayPercent float64  `json:"delay_percent,omitempty"`
	Delay        Duration `json:"delay,omitempty"`
}

// Bounds of a Fault.
const (
	// MaxFaultDelay bounds an injected delay: longer ones only hold
	// connections open.
	MaxFaultDelay = 60 * time.Second
	// DefaultAbortStatus answers aborted requests unless a status is
	// given: a version that cannot serve now.
	DefaultAbortStatus = 503
	// MinFaultPercent is the smallest share a fault takes (the gateway
	// draws in millionths).
	MinFaultPercent = 0.0001
)

// Validate checks the fault and fills the default abort status. A fault
// must do something: a share of aborts, of delays, or both; a status or a
// delay without its share is refused, as is a share without its delay.
func (f *Fault) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"abort_percent", f.AbortPercent}, {"delay_percent", f.DelayPercent}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 100 || p.v > 0 && p.v < MinFaultPercent {
			return fmt.Errorf("fault %s %v must be a percentage from %g to 100 (or 0 for none): %w", p.name, p.v, MinFaultPercent, ErrInvalid)
		}
	}
	if f.AbortStatus != 0 && (f.AbortStatus < 400 || f.AbortStatus > 599) {
		return fmt.Errorf("fault abort_status %d must be an error status from 400 to 599: %w", f.AbortStatus, ErrInvalid)
	}
	if f.AbortStatus != 0 && f.AbortPercent == 0 {
		return fmt.Errorf("fault abort_status %d needs abort_percent, the share of requests to abort: %w", f.AbortStatus, ErrInvalid)
	}
	d := time.Duration(f.Delay)
	if d < 0 || d > MaxFaultDelay {
		return fmt.Errorf("fault delay %s must be above 0 and at most %s: %w", d, MaxFaultDelay, ErrInvalid)
	}
	if f.DelayPercent > 0 && d == 0 {
		return fmt.Errorf("fault delay_percent %v needs delay, how long to wait (such as \"50ms\"): %w", f.DelayPercent, ErrInvalid)
	}
	if d > 0 && f.DelayPercent == 0 {
		return fmt.Errorf("fault delay %s needs delay_percent, the share of requests to delay: %w", d, ErrInvalid)
	}
	if f.AbortPercent == 0 && f.DelayPercent == 0 {
		return fmt.Errorf("a fault needs abort_percent or delay_percent above 0 (clear the fault to remove it): %w", ErrInvalid)
	}
	if f.AbortPercent > 0 && f.AbortStatus == 0 {
		f.AbortStatus = DefaultAbortStatus
	}
	return nil
}

// String describes the fault for people: "abort 30% with 503, delay 50ms
// on 100%".
func (f Fault) String() string {
	s := ""
	if f.AbortPercent > 0 {
		s = fmt.Sprintf("abort %g%% with %d", f.AbortPercent, f.AbortStatus)
	}
	if f.DelayPercent > 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("delay %s on %g%%", time.Duration(f.Delay), f.DelayPercent)
	}
	return s
}

// Duration is a time.Duration that JSON and YAML carry as a Go duration
// string ("50ms", "1.5s"), the form people write and read.
type Duration time.Duration

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"50ms\" or \"2s\": %w", truncate(string(b), 40), ErrInvalid)
	}
	*d = Duration(v)
	return nil
}
