package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/requestid"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyToken
)

func requestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

func tokenFrom(ctx context.Context) domain.Token {
	t, _ := ctx.Value(keyToken).(domain.Token)
	return t
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type apiMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_api_requests_total",
			Help: "API requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_api_request_duration_seconds",
			Help:    "API request latency, by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe wraps the whole mux: request ID, access log, metrics, panics.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestid.From(r.Header.Get(requestid.Header))
		w.Header().Set(requestid.Header, id)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		var span trace.Span
		if s.tracer != nil {
			ctx, span = s.startSpan(ctx, r, id)
		}
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(ctx, "panic serving request", "request_id", id, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					s.writeError(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			} else if _, after, ok := strings.Cut(route, " "); ok {
				route = after
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			if span != nil {
				endSpan(span, r, status)
			}
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(r.Method, route).Observe(d.Seconds())
			s.log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("request_id", id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", d),
				slog.String("actor", tokenFrom(r.Context()).Name))
		}()
		next.ServeHTTP(sw, r)
	})
}

// authenticate returns the caller's token or an error wrapping
// auth.ErrUnauthenticated.
func (s *Server) authenticate(r *http.Request) (domain.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return domain.Token{}, fmt.Errorf("missing bearer token: send \"Authorization: Bearer <token>\" (set SLIPWAY_TOKEN for the CLI): %w", auth.ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return domain.Token{}, fmt.Errorf("authorization header must be \"Bearer <token>\": %w", auth.ErrUnauthenticated)
	}
	t, err := auth.Check(r.Context(), s.tokens, strings.TrimSpace(tok))
	if err != nil {
		return domain.Token{}, err
	}
	return t, nil
}
