package gateway

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestParseRequestHead(t *testing.T) {
	h := http.Header{}
	head := "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: gw:8081\r\ncontent-type: application/json\r\n" +
		"Content-Length: 12\r\nX-A: 1\r\nX-A:  2 \r\ntraceparent: tp\r\nConnection: keep-alive, close\r\n\r\n"
	hd, _, err := parseRequestHead(head, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hd.method != "POST" || hd.target != "/v2/models/m/infer?x=1" || hd.minor != 1 || hd.host != "gw:8081" ||
		hd.contentLength != 12 || hd.chunked || !hd.connClose || !hd.connKeepAlive {
		t.Errorf("head %+v", hd)
	}
	if got := h["X-A"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("X-A %q", got)
	}
	if h.Get("Content-Type") != "application/json" || h.Get("Traceparent") != "tp" {
		t.Errorf("canonical keys: %v", h)
	}
	var u url.URL
	if host, err := parseTarget(hd.target, &u); err != nil || host != "" || u.Path != "/v2/models/m/infer" || u.RawQuery != "x=1" {
		t.Errorf("target: %q %v %+v", host, err, u)
	}
	// Escaped paths go through net/url and read as it reads them.
	for _, target := range []string{"/a%2Fb/c", "/caf%C3%A9", "/a b", "/x?", "/p;q=1/r"} {
		var got url.URL
		if _, err := parseTarget(target, &got); err != nil {
			if target != "/a b" {
				t.Errorf("%q: %v", target, err)
			}
			continue
		}
		want, _ := url.ParseRequestURI(target)
		if got.Path != want.Path || got.RawPath != want.RawPath || got.RawQuery != want.RawQuery || got.ForceQuery != want.ForceQuery {
			t.Errorf("%q: got %+v, net/url %+v", target, got, *want)
		}
	}
}

// FuzzParseRequestHead feeds the server's head parser any bytes: it must
// not panic, and a head it accepts must hold only valid names and values
// and agree with net/http's parser on what both accept.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Type: application/json\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
		"GET http://h/p%20?q HTTP/1.0\nConnection: keep-alive\n\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"\r\n\r\nGET /%zz HTTP/1.1\r\nhost: a\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n := headEnd([]byte(in), 0)
		if n < 0 {
			return
		}
		head := strings.TrimLeft(in[:n], "\r\n")
		if head == "" {
			return
		}
		h := http.Header{}
		hd, _, err := parseRequestHead(head, h, nil)
		if err != nil {
			if err.status < 400 || err.status > 599 {
				t.Fatalf("refused with status %d", err.status)
			}
			return
		}
		var u url.URL
		if _, terr := parseTarget(hd.target, &u); terr != nil {
			return
		}
		for k, vs := range h {
			if !isToken(k) {
				t.Fatalf("invalid name %q", k)
			}
			for _, v := range vs {
				if !validFieldValue(v) || v != trimOWS(v) {
					t.Fatalf("invalid value %q", v)
				}
			}
		}
		if hd.contentLength < -1 || (hd.chunked && hd.contentLength != -1) {
			t.Fatalf("framing %+v", hd)
		}
		// What this parser accepts, net/http's reads the same way.
		r, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if rerr != nil {
			return // net/http is stricter about some targets and values
		}
		if r.Method != hd.method || r.RequestURI != hd.target || r.URL.Path != u.Path || r.URL.RawQuery != u.RawQuery {
			t.Fatalf("net/http reads %s %q (%q ? %q), this parser %s %q (%q ? %q)",
				r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, hd.method, hd.target, u.Path, u.RawQuery)
		}
		if !hd.chunked && r.ContentLength != max(hd.contentLength, 0) {
			t.Fatalf("Content-Length: net/http %d, this parser %d", r.ContentLength, hd.contentLength)
		}
		for k, vs := range h {
			if got := r.Header[k]; strings.Join(got, "\x00") != strings.Join(vs, "\x00") {
				t.Fatalf("%s: net/http %q, this parser %q", k, got, vs)
			}
		}
	})
}
