package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDirectProxyForwards checks that the hand-rolled floor is a proxy at
// all: method, path, query, headers and body reach the upstream, status,
// headers and body come back, and upstream connections are reused.
func TestDirectProxyForwards(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen", r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Caller")+" "+string(b))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	proxy := httptest.NewServer(newDirectProxy(host, host))
	defer proxy.Close()

	const n = 10
	for i := range n {
		req, err := http.NewRequest(http.MethodPost, proxy.URL+"/v2/models/m/infer?x=1", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Caller", "bench")
		resp, err := proxy.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || string(b) != `{"ok":true}` {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		if got, want := resp.Header.Get("X-Seen"), `POST /v2/models/m/infer?x=1 bench {"n":1}`; got != want {
			t.Fatalf("request %d: upstream saw %q, want %q", i, got, want)
		}
	}
	// One connection per pool at most: both pools point at this upstream.
	if c := conns.Load(); c > 2 {
		t.Fatalf("%d requests opened %d upstream connections, want at most 2", n, c)
	}
}
