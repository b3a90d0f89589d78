package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/runtime"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// These tests cover the gateway's own HTTP/1.1 proxy path (proxy.go,
// connpool.go) where the shared tests do not: what goes on the wire,
// connection reuse, and upstreams that misbehave at the HTTP level.

// rawUpstream is a model server written against the socket, for answers
// net/http's server would not send. serve handles one connection; the
// count is of connections accepted.
type rawUpstream struct {
	base  string
	conns atomic.Int64
}

func newRawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{base: "http://" + ln.Addr().String()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			u.conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			})
		}
	}()
	return u
}

// readRequest reads one request and its body, or returns nil at the end
// of the connection.
func readRequest(br *bufio.Reader) *http.Request {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil
	}
	_, _ = io.Copy(io.Discard, req.Body)
	return req
}

const oipAnswer = `{"model_name":"up","model_version":"7","outputs":[]}`

func TestProxyHeadersOnTheWire(t *testing.T) {
	var got atomic.Pointer[http.Request]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Store(r)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "per-connection")
		w.Header().Set("X-Model-Server", "kept")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, oipAnswer)
	}))
	defer up.Close()
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.URL+"/base/", runtime.ProtocolOIP)))
	resp, b := h.do("POST", "/v2/models/fraud/infer?trace=1", inferBody,
		"Authorization", "Bearer gateway-secret", "Cookie", "s=1", "X-Slipway-Environment", "production",
		"Connection", "X-Private", "X-Private", "dropped", "X-Forwarded-For", "203.0.113.9",
		"Forwarded", "for=203.0.113.9", "Te", "trailers", "Accept-Encoding", "gzip", "X-Custom", "passed",
		"X-Request-ID", "req-1", "Expect", "100-continue")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"model_name":"fraud"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	r := got.Load()
	upURL, _ := url.Parse(up.URL)
	want := map[string]string{
		"X-Custom": "passed", "X-Request-Id": "req-1", "X-Forwarded-For": "127.0.0.1",
		"X-Forwarded-Host": strings.TrimPrefix(h.srv.URL, "http://"), "X-Forwarded-Proto": "http",
		"Te": "trailers", "Content-Length": fmt.Sprint(len(inferBody)),
		"Authorization": "", "Cookie": "", "X-Slipway-Environment": "", "X-Private": "", "Connection": "",
		"Forwarded": "", "Accept-Encoding": "", "Expect": "", "User-Agent": "Go-http-client/1.1",
	}
	for k, v := range want {
		if g := strings.Join(r.Header.Values(k), ","); g != v {
			t.Errorf("upstream saw %s: %q, want %q", k, g, v)
		}
	}
	if r.Host != upURL.Host || r.URL.Path != "/base/v2/models/fraud/infer" || r.URL.RawQuery != "trace=1" || r.Header.Get("Traceparent") == "" {
		t.Errorf("upstream saw host %q path %q query %q traceparent %q", r.Host, r.URL.Path, r.URL.RawQuery, r.Header.Get("Traceparent"))
	}
	if resp.Header.Get("X-Model-Server") != "kept" || resp.Header.Get("X-Hop") != "" || resp.Header.Get(HeaderVersion) != "1" {
		t.Errorf("answer headers %v: want the server's own, no hop-by-hop, the version", resp.Header)
	}
}

// A pooled connection serves request after request; one the server closed
// while it sat idle is replaced without the client or the retry budget
// seeing it.
func TestProxyReusesAndReplacesConnections(t *testing.T) {
	var requests atomic.Int64
	keep := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			requests.Add(1)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(oipAnswer), oipAnswer)
		}
	})
	// Answers one request per connection, then closes it without saying
	// so: the next request finds it dead in the pool.
	once := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) != nil {
			requests.Add(1)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(oipAnswer), oipAnswer)
		}
	})
	for _, c := range []struct {
		name      string
		up        *rawUpstream
		conns     int64
		reuseable bool
	}{{"keep-alive", keep, 1, true}, {"closed while idle", once, 20, false}} {
		t.Run(c.name, func(t *testing.T) {
			requests.Store(0)
			h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, c.up.base, runtime.ProtocolOIP)))
			for i := range 20 {
				if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
				}
			}
			if n := c.up.conns.Load(); n != c.conns {
				t.Errorf("%d connections for 20 requests, want %d", n, c.conns)
			}
			if n := requests.Load(); n != 20 {
				t.Errorf("upstream answered %d requests, want 20 (none sent twice)", n)
			}
			h.settle()
			if r := gather(t, h.reg)[`slipway_gateway_retries_total{environment="production",model="fraud",outcome="retried",version="1"}`]; r != 0 {
				t.Errorf("%v retries counted; replacing a dead pooled connection is not a retry", r)
			}
		})
	}
}

// A request that must not be sent twice goes only on a pooled connection
// seen open: one the server closed while it sat idle is left for a new one.
func TestProxyNonIdempotentSkipsDeadConnection(t *testing.T) {
	closed := make(chan struct{}, 10)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) != nil {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		}
		c.Close()
		closed <- struct{}{}
	})
	h := newHarness(t, nil, route("chat", "production", remote(t, 1, 100, up.base, runtime.ProtocolOpenAI)))
	for i := range 3 {
		if resp, b := h.do("POST", "/v1/chat/completions", openAIChat); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		<-closed // the server has closed the connection the gateway keeps
	}
	if n := up.conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests, want 3", n)
	}
}

// Misbehaving answers at the HTTP level: each is refused as 502, and a
// connection that carried one is never reused.
func TestProxyBadAnswers(t *testing.T) {
	cases := map[string]string{
		"headers over the cap":    "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 4096) + "\r\nContent-Length: 2\r\n\r\n{}",
		"unasked protocol switch": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"endless 1xx":             strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"not HTTP":                "SSH-2.0-OpenSSH_9.6\r\n\r\n",
		"short body":              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) != nil {
					_, _ = io.WriteString(c, answer)
				}
			})
			rv := remote(t, 1, 100, up.base, runtime.ProtocolOIP)
			rv.Endpoint.Transport.(*http.Transport).MaxResponseHeaderBytes = 2048
			h := newHarness(t, func(c *Config) { c.Retry.MaxAttempts = 1 }, route("fraud", "production", rv))
			resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("%d %s, want 502", resp.StatusCode, b)
			}
		})
	}
}

// A chunked answer passes through chunk by chunk with its trailers, and
// 1xx informational answers reach the client before the final one.
func TestProxyChunkedTrailersAndInformational(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
				"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n")
		}
	})
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.base, runtime.ProtocolOIP)))
	var early []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		early = append(early, fmt.Sprint(code, " ", hdr.Get("Link")))
		return nil
	}}
	for i := range 2 { // the second request on the pooled connection
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST",
			h.srv.URL+"/v2/models/fraud/infer", strings.NewReader(inferBody))
		h.sent++
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "hello world" || resp.Trailer.Get("X-Checksum") != "42" || resp.ContentLength != -1 {
			t.Errorf("request %d: %q %v trailer %v length %d", i, b, err, resp.Trailer, resp.ContentLength)
		}
	}
	if len(early) != 2 || early[0] != "103 </style.css>; rel=preload" {
		t.Errorf("informational answers seen: %q", early)
	}
	if up.conns.Load() != 1 {
		t.Errorf("%d connections, want 1: a chunked answer read to its end leaves the connection reusable", up.conns.Load())
	}
}

// Connection: close from the server, or keep-alives off in the transport,
// means one connection per request.
func TestProxyConnectionClose(t *testing.T) {
	var closes atomic.Int64
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req := readRequest(br)
			if req == nil {
				return
			}
			if req.Close {
				closes.Add(1)
			}
			hdr := ""
			if !req.Close {
				hdr = "Connection: close\r\n"
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\n{}", hdr)
			if !req.Close {
				// Keep the connection open: the gateway must close it.
				_, _ = io.Copy(io.Discard, br)
				return
			}
		}
	})
	for _, noKeepAlive := range []bool{false, true} {
		up.conns.Store(0)
		rv := remote(t, 1, 100, up.base, runtime.ProtocolOIP)
		rv.Endpoint.Transport.(*http.Transport).DisableKeepAlives = noKeepAlive
		h := newHarness(t, nil, route("fraud", "production", rv))
		for range 3 {
			if resp, b := h.do("GET", "/v2/models/fraud/ready", ""); resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		}
		if up.conns.Load() != 3 {
			t.Errorf("keep-alives off %v: %d connections for 3 requests", noKeepAlive, up.conns.Load())
		}
	}
	if closes.Load() != 3 {
		t.Errorf("%d requests said Connection: close with keep-alives off, want 3", closes.Load())
	}
}

// Every connection is dialled through the endpoint's transport: the
// egress policy refuses what it does not allow, and nothing is sent.
func TestProxyDialsThroughEgressPolicy(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	policy := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	rv := deployment.RouteVersion{Version: 1, Weight: 100, Endpoint: runtime.Endpoint{Protocol: runtime.ProtocolOIP, URL: u, Transport: policy.Transport()}}
	h := newHarness(t, nil, route("fraud", "production", rv))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(oipError(t, b), "egress policy") || hits.Load() != 0 {
		t.Errorf("%d %s, upstream reached %d times: want 502 naming the egress policy, never reached", resp.StatusCode, b, hits.Load())
	}
}

// A caller that goes away while the upstream thinks ends the call at
// once: 499 in the metrics, and the upstream sees its request cancelled.
func TestProxyCallerGoesAway(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http's server watches the connection
		close(arrived)
		<-r.Context().Done()
		close(cancelled)
	}))
	defer up.Close()
	h := newHarness(t, nil, route("fraud", "production", remote(t, 1, 100, up.URL, runtime.ProtocolOIP)))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/v2/models/fraud/infer", strings.NewReader(inferBody))
	go func() { <-arrived; cancel() }()
	h.sent++
	if resp, err := h.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the cancelled request got an answer")
	}
	<-cancelled
	h.settle()
	if got := gather(t, h.reg)[`slipway_gateway_requests_total{code="499",environment="production",model="fraud",version="1"}`]; got != 1 {
		t.Errorf("requests_total{code=499} = %v, want 1", got)
	}
}

// An external version's timeout option (the transport's response header
// timeout) names itself in the answer, apart from the gateway's timeout.
func TestProxyTransportHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	rv := remote(t, 1, 100, up.URL, runtime.ProtocolOIP)
	rv.Endpoint.Transport.(*http.Transport).ResponseHeaderTimeout = 1 // a nanosecond: expires before any answer
	h := newHarness(t, func(c *Config) { c.Retry.MaxAttempts = 1 }, route("fraud", "production", rv))
	resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(oipError(t, b), "within its timeout option") {
		t.Errorf("%d %s, want 504 naming the timeout option", resp.StatusCode, b)
	}
}

func TestWriteTarget(t *testing.T) {
	cases := []struct {
		base, path, raw, query, want string
	}{
		{"http://h", "/v2/models/m/infer", "", "", "/v2/models/m/infer"},
		{"http://h/api/", "/v1/chat/completions", "", "a=1&b=2", "/api/v1/chat/completions?a=1&b=2"},
		{"http://h", "/v2/models/a b/infer", "/v2/models/a%20b/infer", "", "/v2/models/a%20b/infer"},
		{"http://h/x%2Fy", "/v2/models/m", "", "", "/x%2Fy/v2/models/m"},
		{"http://h", "/v2/models/m", "", "a=1;b=2", "/v2/models/m"},
		{"http://h", "/v2/models/m", "", "a=%zz&b=2", "/v2/models/m?b=2"},
	}
	for _, c := range cases {
		base, err := url.Parse(c.base)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		bw := bufio.NewWriter(&sb)
		writeTarget(bw, base, target{upstreamPath: c.path, upstreamRawPath: c.raw}, c.query)
		_ = bw.Flush()
		if sb.String() != c.want {
			t.Errorf("%s + %s ? %s = %q, want %q", c.base, c.path, c.query, sb.String(), c.want)
		}
	}
}

// The header names notForwarded lists are the canonical forms net/http's
// server stores; a constant that is not canonical would never match.
func TestNotForwardedNamesAreCanonical(t *testing.T) {
	for _, k := range []string{HeaderRequestID, HeaderTraceparent, HeaderEnvironment, "TE", "x-forwarded-for"} {
		if !notForwarded(textproto.CanonicalMIMEHeaderKey(k)) {
			t.Errorf("%s (%s) is forwarded", k, textproto.CanonicalMIMEHeaderKey(k))
		}
	}
}

// countingRT stands for the fleet's wrapper: it only counts requests, and
// says so by Unwrap together with Endpoint.Track.
type countingRT struct {
	next       http.RoundTripper
	roundTrips atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.roundTrips.Add(1)
	return c.next.RoundTrip(r)
}

func (c *countingRT) Unwrap() http.RoundTripper { return c.next }

// A counting wrapper is looked through only when the endpoint says how to
// count (Track), and then every request is counted while it runs.
func TestProxyCountsThroughTrack(t *testing.T) {
	var inflight, during atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		during.Store(inflight.Load())
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, oipAnswer)
	}))
	defer up.Close()
	for _, track := range []bool{true, false} {
		rv := remote(t, 1, 100, up.URL, runtime.ProtocolOIP)
		rt := &countingRT{next: rv.Endpoint.Transport}
		rv.Endpoint.Transport = rt
		if track {
			done := func() { inflight.Add(-1) }
			rv.Endpoint.Track = func() func() { inflight.Add(1); return done }
		}
		during.Store(-1)
		h := newHarness(t, nil, route("fraud", "production", rv))
		if resp, b := h.do("POST", "/v2/models/fraud/infer", inferBody); resp.StatusCode != 200 {
			t.Fatalf("track %v: %d %s", track, resp.StatusCode, b)
		}
		h.settle()
		switch {
		case track && (rt.roundTrips.Load() != 0 || during.Load() != 1 || inflight.Load() != 0):
			t.Errorf("with Track: %d round trips, %d in flight during the call, %d after; want 0, 1, 0",
				rt.roundTrips.Load(), during.Load(), inflight.Load())
		case !track && rt.roundTrips.Load() != 1:
			t.Errorf("without Track the wrapper was bypassed: %d round trips", rt.roundTrips.Load())
		}
	}
}

// The look before reusing a pooled connection for a request that cannot
// be resent finds one its server closed, however recently it came back
// to the pool, and keeps an open one even when the read deadline left
// from its previous request has passed. On the raw path (rawio.go) the
// look is made as the request is written (lookFirst): get hands the
// connection out, and the write fails with errPeerClosed, sending
// nothing; elsewhere get looks.
func TestPoolLooksBeforeReuse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := newConnPool(&http.Transport{}, ln.Addr().String())
	conn := func(closeIt bool) *upConn {
		t.Helper()
		c, err := p.dialConn(context.Background(), time.Now().Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if closeIt {
			_ = sc.Close()
			waitFor(t, c.peerClosed) // the server's close has arrived
		} else {
			t.Cleanup(func() { _ = sc.Close() })
		}
		return c
	}
	now := time.Now()
	for _, tc := range []struct {
		name           string
		closed, check  bool
		staleDeadline  bool
		wantConnection bool
	}{
		{"closed, looked at", true, true, false, false},
		{"closed, no look asked", true, false, false, true},
		{"open", false, true, false, true},
		{"open, deadline passed", false, true, true, true},
	} {
		c := conn(tc.closed)
		if tc.staleDeadline {
			_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		}
		p.put(c)
		c.idleSince = now // returned a moment ago
		got := p.get(now, tc.check)
		if got != nil && got.io.rc != nil && tc.check {
			// The raw path: the look comes with the write.
			got.io.lookFirst = true
			_, err := got.io.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
			if sent := err == nil; sent != tc.wantConnection {
				t.Errorf("%s: the request was sent %v (%v), want %v", tc.name, sent, err, tc.wantConnection)
			} else if err != nil && !errors.Is(err, errPeerClosed) {
				t.Errorf("%s: %v, want errPeerClosed", tc.name, err)
			}
		} else if (got != nil) != tc.wantConnection {
			t.Errorf("%s: got a connection %v, want %v", tc.name, got != nil, tc.wantConnection)
		}
		if got != nil {
			got.close()
		}
	}
}
