package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/logtest"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// slogLine is what slog's JSONHandler writes for e.
func slogLine(t testing.TB, e *accessEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	r := slog.NewRecord(e.time, e.level, accessMsg, 0)
	r.AddAttrs(e.attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAccessLineIsSlogsLine(t *testing.T) {
	base := accessEntry{
		time: time.Date(2026, 11, 23, 5, 6, 7, 123456789, time.UTC), level: slog.LevelInfo,
		requestID: "0b7c1d2e", method: "POST", path: "/v2/models/iris/infer", status: 200, bytes: 123,
		duration: 1234567 * time.Nanosecond, model: "iris", version: 2, environment: "production",
		attempts: 1, traceID: "4bf92f3577b34da6a3ce929d0e0e4736", routedBy: "split",
	}
	odd := []string{
		"", `"quoted"`, `back\slash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f", "<a href=x>&amp;</a>",
		"é ü 日本 🚀", "bad \xff\xfe utf8 \xc3", "line\u2028para\u2029sep", "/v2/models/%2F..%2f/infer",
	}
	entries := []accessEntry{base}
	for _, s := range odd {
		e := base
		e.requestID, e.path, e.model, e.method = s, "/"+s, s, s
		entries = append(entries, e)
	}
	quiet := base
	quiet.level, quiet.status, quiet.model, quiet.version, quiet.routedBy = slog.LevelDebug, 503, "", 0, ""
	quiet.time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	quiet.fallbackFrom, quiet.attempts, quiet.bytes, quiet.duration = 3, 4, -1, 0
	entries = append(entries, quiet)
	for _, e := range entries {
		want := slogLine(t, &e)
		got := appendAccessLine(nil, &e)
		if !bytes.Equal(got, want) {
			t.Errorf("access line\n got %s\nwant %s", got, want)
		}
		if !json.Valid(bytes.TrimSpace(got)) {
			t.Errorf("access line is not JSON: %s", got)
		}
	}
}

func FuzzAccessLine(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\n", "\xff", "\u2028", "日本"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, path, model string) {
		e := accessEntry{time: time.Unix(1700000000, 42).UTC(), level: slog.LevelInfo, path: path, model: model, method: "GET"}
		if got, want := appendAccessLine(nil, &e), slogLine(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("access line\n got %s\nwant %s", got, want)
		}
	})
}

// jsonLines decodes the log lines written to b, one object per line.
func jsonLines(t *testing.T, b *logtest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range b.Lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		out = append(out, m)
	}
	return out
}

// The gateway writes one line per request through Config.AccessLog, at
// the levels its logger is enabled for, and its other log lines still
// through the logger.
func TestGatewayAccessLog(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug, slog.LevelWarn} {
		t.Run(level.String(), func(t *testing.T) {
			var access, other logtest.Buffer
			h := newHarness(t, func(c *Config) {
				c.Log = slog.New(slog.NewJSONHandler(&other, &slog.HandlerOptions{Level: level}))
				c.AccessLog = &access
			}, route("iris", "production", inProcess(2, 100, &fakeModel{})))
			resp, _ := h.do(http.MethodPost, "/v2/models/iris/infer", inferBody, "X-Request-ID", "caller-1")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("infer: %s", resp.Status)
			}
			h.do(http.MethodGet, "/v2/health/live", "")
			h.do(http.MethodPost, "/v2/models/nope/infer", inferBody)
			h.settle()
			lines := jsonLines(t, &access)
			want := map[slog.Level]int{slog.LevelInfo: 2, slog.LevelDebug: 3, slog.LevelWarn: 0}[level]
			if len(lines) != want {
				t.Fatalf("%d access lines at %s, want %d: %v", len(lines), level, want, lines)
			}
			if want == 0 {
				return
			}
			first := lines[0]
			for k, v := range map[string]any{
				"level": "INFO", "msg": accessMsg, "request_id": "caller-1", "method": "POST",
				"path": "/v2/models/iris/infer", "status": 200.0, "model": "iris", "version": 2.0,
				"environment": "production", "fallback_from": 0.0, "attempts": 1.0, "routed_by": "split",
			} {
				if first[k] != v {
					t.Errorf("access line %s = %v, want %v (%v)", k, first[k], v, first)
				}
			}
			if d, _ := first["duration"].(float64); d <= 0 {
				t.Errorf("duration %v", first["duration"])
			}
			if _, err := time.Parse(time.RFC3339Nano, first["time"].(string)); err != nil {
				t.Errorf("time: %v", err)
			}
			last := lines[len(lines)-1]
			if last["status"] != 404.0 || last["model"] != "" {
				t.Errorf("unrouted request's line: %v", last)
			}
			if level == slog.LevelDebug && (lines[1]["level"] != "DEBUG" || lines[1]["path"] != "/v2/health/live") {
				t.Errorf("health probe's line: %v", lines[1])
			}
			for _, l := range jsonLines(t, &other) {
				if l["msg"] == accessMsg {
					t.Errorf("an access line went through the logger too: %v", l)
				}
			}
		})
	}
}

// A proxied answer reaches the client before the gateway writes its
// access-log line (and records its metrics): the client never waits for
// the bookkeeping.
func TestGatewayAnswersBeforeItLogs(t *testing.T) {
	up := httptest.NewServer(&fakeModel{})
	defer up.Close()
	logged := make(chan struct{})
	release := make(chan struct{})
	h := newHarness(t, func(c *Config) {
		c.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		c.AccessLog = writerFunc(func(p []byte) (int, error) {
			close(logged)
			<-release
			return len(p), nil
		})
	}, route("iris", "production", remote(t, 2, 100, up.URL, runtime.ProtocolOIP)))
	resp, b := h.do(http.MethodPost, "/v2/models/iris/infer", inferBody) // returns while the log write waits
	<-logged
	close(release)
	h.settle()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"model_name":"iris"`) {
		t.Fatalf("answer %d %s", resp.StatusCode, b)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
