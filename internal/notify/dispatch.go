package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/store"
)

// DispatcherConfig wires a Dispatcher. Zero fields take the defaults in
// their comments.
type DispatcherConfig struct {
	Store store.Store
	// Policy says which addresses webhooks may be sent to (nil: loopback
	// only). Metadata and link-local addresses are refused whatever it
	// says; a refused delivery fails at once.
	Policy *egress.Policy
	Clock  clock.Clock
	Log    *slog.Logger
	// Source is the CloudEvents source of every event (default
	// "slipway://" and the host name).
	Source string
	// MaxAttempts bounds the attempts of one delivery (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubling after
	// each (default 30 s), up to MaxBackoff (default 30 min); each wait is
	// drawn between half and all of it. The defaults spread 8 attempts
	// over about an hour.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxRetryAfter caps how long a receiver's Retry-After may defer the
	// next attempt (default 1 h).
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt, connection to last byte (default 10 s).
	Timeout time.Duration
	// Concurrency bounds the attempts in flight (default 4).
	Concurrency int
	// PollInterval is how often the outbox is checked for due deliveries
	// when nothing wakes the dispatcher sooner (default 1 s).
	PollInterval time.Duration
	// Retention is how long ended deliveries are kept (default 30 days;
	// negative keeps them forever).
	Retention time.Duration
	// Jitter returns a number in [0, 1) (default math/rand/v2).
	Jitter func() float64
	// Metrics, when set, registers slipway_webhook_attempts_total.
	Metrics prometheus.Registerer
}

// Dispatcher sends the outbox's pending deliveries, at most one at a time
// per webhook, so a receiver that hangs holds one slot, not all of them,
// and one receiver gets its events in the order they are due. Run drives
// it in production; RunDue attempts what is due once, for tests driving a
// fake clock. Use one or the other.
type Dispatcher struct {
	c        DispatcherConfig
	client   *http.Client
	lease    time.Duration
	kick     chan struct{}
	slots    chan struct{}
	wg       sync.WaitGroup
	attempts *prometheus.CounterVec

	mu sync.Mutex
	// busy holds the webhooks with an attempt in flight in this process.
	busy map[string]bool
}

// NewDispatcher checks the configuration and fills in defaults.
func NewDispatcher(c DispatcherConfig) (*Dispatcher, error) {
	if c.Store == nil {
		return nil, errors.New("notify: dispatcher needs a store")
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Source == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.Source = "slipway://" + host
	}
	if u, err := url.Parse(c.Source); err != nil || strings.ContainsAny(c.Source, " \t\r\n") || u.String() == "" {
		return nil, fmt.Errorf("webhook event source %q is not a URI reference: %w", c.Source, domain.ErrInvalid)
	}
	defaults := []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.Backoff, 30 * time.Second}, {&c.MaxBackoff, 30 * time.Minute}, {&c.MaxRetryAfter, time.Hour},
		{&c.Timeout, 10 * time.Second}, {&c.PollInterval, time.Second}, {&c.Retention, 30 * 24 * time.Hour},
	}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxAttempts < 1 || c.Concurrency < 1 || c.Backoff < 0 || c.MaxBackoff < c.Backoff || c.MaxRetryAfter < 0 ||
		c.Timeout < 0 || c.PollInterval < 0 {
		return nil, fmt.Errorf("webhook dispatcher: attempts and concurrency must be at least 1 and durations positive: %w", domain.ErrInvalid)
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	client := c.Policy.Client()
	client.Timeout = c.Timeout
	d := &Dispatcher{
		c: c, client: client,
		// An attempt records its outcome well within its timeout; past
		// this, a claim whose process died is due again.
		lease: c.Timeout + time.Minute,
		kick:  make(chan struct{}, 1),
		slots: make(chan struct{}, c.Concurrency),
		busy:  map[string]bool{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_webhook_attempts_total",
			Help: "Webhook delivery attempts, by result: delivered, retried (to be tried again) or failed (given up).",
		}, []string{"result"}),
	}
	if c.Metrics != nil {
		if err := c.Metrics.Register(d.attempts); err != nil {
			return nil, fmt.Errorf("webhook dispatcher metrics: %w", err)
		}
	}
	return d, nil
}

// Kick wakes the dispatcher after a commit that queued deliveries, so they
// go out before the next poll. It never blocks.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run sends due deliveries until ctx ends, then waits for the attempts in
// flight (each bounded by Timeout) to record their outcome, so the store
// may close after it returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	tick := time.NewTicker(d.c.PollInterval)
	defer tick.Stop()
	defer d.wg.Wait()
	var pruned time.Time
	for {
		if now := d.c.Clock.Now(); d.c.Retention > 0 && now.Sub(pruned) >= time.Hour {
			pruned = now
			d.prune(ctx, now)
		}
		d.fill(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.kick:
		}
	}
}

// fill claims as many due deliveries as there are free slots and starts
// an attempt for each.
func (d *Dispatcher) fill(ctx context.Context) {
	free := 0
acquire:
	for free < cap(d.slots) {
		select {
		case d.slots <- struct{}{}:
			free++
		default:
			break acquire
		}
	}
	if free == 0 {
		return
	}
	jobs, err := d.claim(ctx, free)
	if err != nil && ctx.Err() == nil {
		d.c.Log.Warn("webhook outbox: claiming due deliveries failed", "err", err.Error())
	}
	for range free - len(jobs) {
		<-d.slots
	}
	for _, j := range jobs {
		d.wg.Go(func() {
			defer func() {
				<-d.slots
				d.Kick() // a slot is free: more may be due
			}()
			d.attempt(ctx, j)
		})
	}
}

// RunDue claims what is due now (at most Concurrency deliveries), attempts
// them concurrently, records the outcomes and says how many it attempted.
func (d *Dispatcher) RunDue(ctx context.Context) (int, error) {
	jobs, err := d.claim(ctx, d.c.Concurrency)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { d.attempt(ctx, j) })
	}
	wg.Wait()
	return len(jobs), nil
}

// job is one claimed delivery and the webhook it goes to.
type job struct {
	delivery domain.Delivery
	hook     domain.Webhook
}

// claim takes due deliveries in one transaction, at most n and one per
// webhook without an attempt in flight: it counts the attempt and moves
// the next attempt past the lease, so no other dispatcher (or a later
// poll) sends them meanwhile, and a crash mid-attempt only delays the
// retry until the lease lapses. The webhooks claimed are marked busy until
// their attempt is recorded (done).
func (d *Dispatcher) claim(ctx context.Context, n int) ([]job, error) {
	now := d.c.Clock.Now()
	d.mu.Lock()
	busy := maps.Clone(d.busy)
	d.mu.Unlock()
	var jobs []job
	err := d.c.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		jobs = jobs[:0]
		// One row per webhook: look past the busy ones.
		due, err := tx.DueDeliveries(ctx, now, min(store.MaxLimit, n+len(busy)))
		if err != nil {
			return err
		}
		picked := map[string]domain.Webhook{}
		for _, dl := range due {
			if len(jobs) == n {
				break
			}
			if _, dup := picked[dl.WebhookID]; dup || busy[dl.WebhookID] {
				continue
			}
			h, err := tx.GetWebhook(ctx, dl.WebhookID)
			if err != nil {
				return err
			}
			picked[dl.WebhookID] = h
			dl.Attempts++
			dl.NextAttemptAt = now.Add(d.lease)
			dl.UpdatedAt = now
			if err := tx.UpdateDelivery(ctx, dl); err != nil {
				return err
			}
			jobs = append(jobs, job{delivery: dl, hook: h})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claiming due webhook deliveries: %w", err)
	}
	d.mu.Lock()
	for _, j := range jobs {
		d.busy[j.hook.ID] = true
	}
	d.mu.Unlock()
	return jobs, nil
}

// done frees a webhook for its next attempt.
func (d *Dispatcher) done(webhook string) {
	d.mu.Lock()
	delete(d.busy, webhook)
	d.mu.Unlock()
}

// outcome is what one attempt came to.
type outcome struct {
	delivered bool
	// retry: worth trying again (a network error, 408, 429, 5xx).
	retry      bool
	retryAfter time.Duration
	status     int
	err        string
}

// attempt sends one claimed delivery and records the outcome. A Run whose
// context ends does not cut the attempt short: it has its own timeout.
func (d *Dispatcher) attempt(ctx context.Context, j job) {
	defer d.done(j.hook.ID)
	ctx = context.WithoutCancel(ctx)
	sendCtx, cancel := context.WithTimeout(ctx, d.c.Timeout)
	out := d.send(sendCtx, j)
	cancel()

	dl := j.delivery
	now := d.c.Clock.Now()
	dl.UpdatedAt, dl.LastStatusCode, dl.LastError = now, out.status, out.err
	switch {
	case out.delivered:
		dl.Status, dl.NextAttemptAt = domain.DeliveryDelivered, time.Time{}
	case out.retry && dl.Attempts < d.c.MaxAttempts:
		dl.Status, dl.NextAttemptAt = domain.DeliveryPending, now.Add(d.delay(dl.Attempts, out.retryAfter))
	case out.retry:
		dl.Status, dl.NextAttemptAt = domain.DeliveryFailed, time.Time{}
		dl.LastError = fmt.Sprintf("gave up after %d attempts; the last: %s", dl.Attempts, out.err)
	default:
		dl.Status, dl.NextAttemptAt = domain.DeliveryFailed, time.Time{}
	}
	switch dl.Status {
	case domain.DeliveryDelivered:
		d.attempts.WithLabelValues("delivered").Inc()
	case domain.DeliveryPending:
		d.attempts.WithLabelValues("retried").Inc()
	default:
		d.attempts.WithLabelValues("failed").Inc()
	}
	recCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := d.c.Store.Update(recCtx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, dl) })
	log := d.c.Log.With("delivery", dl.ID, "webhook", dl.WebhookID, "event", dl.EventType, "attempt", dl.Attempts)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		// The webhook was removed while the attempt ran.
	case err != nil:
		log.Warn("webhook delivery: recording the outcome failed; it will be tried again when its claim lapses", "err", err.Error())
	case dl.Status == domain.DeliveryFailed:
		log.Warn("webhook delivery failed", "status", dl.LastStatusCode, "err", dl.LastError)
	case dl.Status == domain.DeliveryPending:
		log.Info("webhook delivery will be retried", "status", dl.LastStatusCode, "err", dl.LastError, "next_attempt_at", dl.NextAttemptAt)
	default:
		log.Debug("webhook delivered", "status", dl.LastStatusCode)
	}
}

// send makes one HTTP attempt.
func (d *Dispatcher) send(ctx context.Context, j job) outcome {
	b, err := body(j.delivery, d.c.Source)
	if err != nil {
		return outcome{err: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.hook.URL, bytes.NewReader(b))
	if err != nil {
		return outcome{err: "the webhook's URL does not make a request: " + unwrapURLError(err).Error()}
	}
	ts := d.c.Clock.Now().Unix()
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "slipway-webhooks/1")
	req.Header.Set(HeaderEvent, j.delivery.EventType)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(j.delivery.ID, 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(j.hook.Secret, ts, b))
	resp, err := d.client.Do(req)
	if err != nil {
		// The URL may carry credentials in its query: never repeat it.
		cause := unwrapURLError(err)
		switch {
		case errors.Is(err, egress.ErrRefused):
			return outcome{err: "not sent: " + cause.Error()}
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return outcome{retry: true, err: fmt.Sprintf("no answer within %s", d.c.Timeout)}
		default:
			return outcome{retry: true, err: "network error: " + cause.Error()}
		}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	out := outcome{status: resp.StatusCode}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		out.delivered = true
		return out
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		out.retry = true
		out.retryAfter = retryAfter(resp.Header.Get("Retry-After"), d.c.Clock.Now())
	}
	out.err = fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	if code >= 300 && code < 400 {
		out.err += " (redirects are not followed; point the webhook at the final URL)"
	}
	if s := clean(snippet); s != "" {
		out.err += ": " + s
	}
	return out
}

// delay is the wait before attempt n+1 after n failed: a receiver's
// Retry-After (capped), else exponential backoff with jitter.
func (d *Dispatcher) delay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return max(min(retryAfter, d.c.MaxRetryAfter), time.Second)
	}
	back := d.c.Backoff
	for i := 1; i < n && back < d.c.MaxBackoff; i++ {
		back *= 2
	}
	back = min(back, d.c.MaxBackoff)
	return back/2 + time.Duration(d.c.Jitter()*float64(back/2))
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
// 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > 7*24*3600 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (d *Dispatcher) prune(ctx context.Context, now time.Time) {
	var n int
	err := d.c.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		n, err = tx.PruneDeliveries(ctx, now.Add(-d.c.Retention))
		return err
	})
	if err != nil && ctx.Err() == nil {
		d.c.Log.Warn("webhook outbox: pruning old deliveries failed", "err", err.Error())
	} else if n > 0 {
		d.c.Log.Info("webhook outbox: pruned ended deliveries", "count", n, "older_than", d.c.Retention.String())
	}
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// clean makes a receiver's answer safe to store and show: valid UTF-8,
// one line, no control characters.
func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), "�")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(b) == 256 && s != "" {
		s += "…"
	}
	return s
}
