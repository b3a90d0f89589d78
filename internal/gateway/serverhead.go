package gateway

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// This file parses the head of an HTTP/1.1 request for the gateway's own
// server (server.go): the request line and the header fields, straight
// into the connection's reused header map. Every string of a request
// (method, target, keys that are already canonical, values) is a piece of
// one string made from the head, so parsing allocates that string and,
// for the rare key a client did not send in canonical form, its
// canonical copy.

// requestHead is what the server needs to know about a request beyond
// its header map.
type requestHead struct {
	method, target string
	minor          int // 1 for HTTP/1.1, 0 for HTTP/1.0
	host           string
	contentLength  int64 // -1: none given
	chunked        bool
	connClose      bool // Connection: close
	connKeepAlive  bool // Connection: keep-alive (what an HTTP/1.0 client asks)
	expectContinue bool
}

// requestError is a request the server refuses before the handler sees it,
// with the status it answers.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) *requestError { return &requestError{http.StatusBadRequest, msg} }

// headEnd returns the length of the head at the start of b, its blank
// line included, or -1 when the blank line has not arrived. Lines may end
// in CRLF or a bare LF. from is where a previous call stopped looking.
func headEnd(b []byte, from int) int {
	for i := max(from, 0); i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// headRescan is where headEnd may start again after n bytes were
// searched: a line end may straddle the boundary.
func headRescan(n int) int { return max(n-3, 0) }

// parseRequestHead parses head (a whole head, its blank line included)
// into hd, putting the fields in h (which must be empty). Values of
// fields are appended to slab, which the map's slices share; the grown
// slab is returned.
func parseRequestHead(head string, h http.Header, slab []string) (requestHead, []string, *requestError) {
	hd := requestHead{contentLength: -1}
	line, rest := nextLine(head)
	if line == "" {
		return hd, slab, badRequest("empty request line")
	}
	var err *requestError
	if hd.method, hd.target, hd.minor, err = parseRequestLine(line); err != nil {
		return hd, slab, err
	}
	hosts := 0
	for {
		line, rest = nextLine(rest)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return hd, slab, badRequest("folded header line")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return hd, slab, badRequest("malformed header line")
		}
		name := line[:colon]
		if !isToken(name) {
			return hd, slab, badRequest("invalid header field name")
		}
		v := trimOWS(line[colon+1:])
		if !validFieldValue(v) {
			return hd, slab, badRequest("invalid header field value")
		}
		k := textproto.CanonicalMIMEHeaderKey(name)
		switch k {
		case "Host":
			hosts++
			hd.host = v
		case "Content-Length":
			n, ok := parseContentLength(v)
			if !ok || (hd.contentLength >= 0 && n != hd.contentLength) {
				return hd, slab, badRequest("invalid Content-Length")
			}
			hd.contentLength = n
		case "Transfer-Encoding":
			if hd.chunked || !strings.EqualFold(v, "chunked") {
				return hd, slab, &requestError{http.StatusNotImplemented, "unsupported Transfer-Encoding (only chunked is)"}
			}
			hd.chunked = true
		case "Connection":
			for f := range strings.SplitSeq(v, ",") {
				switch f = textproto.TrimString(f); {
				case strings.EqualFold(f, "close"):
					hd.connClose = true
				case strings.EqualFold(f, "keep-alive"):
					hd.connKeepAlive = true
				}
			}
		case "Expect":
			if !strings.EqualFold(v, "100-continue") {
				return hd, slab, &requestError{http.StatusExpectationFailed, "unsupported Expect (only 100-continue is)"}
			}
			hd.expectContinue = true
		}
		if k == "Host" || k == "Transfer-Encoding" {
			continue // as net/http's server: they live in Request.Host and TransferEncoding
		}
		if _, ok := h[k]; ok && k == "Content-Length" {
			continue // repeated with the same value: kept once, as net/http does
		}
		slab = append(slab, v)
		if vs, ok := h[k]; ok {
			h[k] = append(vs, v)
		} else {
			h[k] = slab[len(slab)-1 : len(slab) : len(slab)]
		}
	}
	if hd.chunked && (hd.contentLength >= 0 || hd.minor == 0) {
		return hd, slab, badRequest("Transfer-Encoding with Content-Length, or in HTTP/1.0")
	}
	if hosts > 1 || (hosts == 0 && hd.minor == 1) {
		return hd, slab, badRequest("an HTTP/1.1 request needs exactly one Host header")
	}
	return hd, slab, nil
}

// nextLine splits s at its first line end (CRLF or LF).
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseRequestLine parses "METHOD target HTTP/1.x".
func parseRequestLine(line string) (method, target string, minor int, err *requestError) {
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return "", "", 0, badRequest("malformed request line")
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := strings.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return "", "", 0, badRequest("malformed request line")
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return "", "", 0, badRequest("invalid method")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return "", "", 0, badRequest("invalid request target")
		}
	}
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && proto[6] == '.' &&
			proto[5] >= '0' && proto[5] <= '9' && proto[7] >= '0' && proto[7] <= '9' {
			return "", "", 0, &requestError{http.StatusHTTPVersionNotSupported, "only HTTP/1.1 and HTTP/1.0 are served here"}
		}
		return "", "", 0, badRequest("malformed HTTP version")
	}
	if method == http.MethodConnect {
		return "", "", 0, &requestError{http.StatusNotImplemented, "CONNECT is not supported"}
	}
	return method, target, minor, nil
}

// parseTarget fills u from a request target. Origin-form targets whose
// path URL escaping leaves alone (nearly all) are cut without allocating;
// others go through url.ParseRequestURI. It returns the host an
// absolute-form target names.
func parseTarget(target string, u *url.URL) (host string, err *requestError) {
	*u = url.URL{}
	if target[0] == '/' {
		p, q, hasQuery := strings.Cut(target, "?")
		if plainPath(p) {
			u.Path, u.RawQuery, u.ForceQuery = p, q, hasQuery && q == ""
			return "", nil
		}
	} else if target == "*" {
		u.Path = "*"
		return "", nil
	}
	pu, perr := url.ParseRequestURI(target)
	if perr != nil || (pu.Scheme != "" && pu.Scheme != "http" && pu.Scheme != "https") || (pu.Scheme == "" && target[0] != '/') {
		return "", badRequest("invalid request target")
	}
	*u = *pu
	host = u.Host
	u.Scheme, u.Host = "", "" // as net/http's server, the URL holds the path and query
	return host, nil
}

// parseContentLength reads a Content-Length value: digits only.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// trimOWS trims the optional white space around a field value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validFieldValue refuses control characters other than HTAB in a value.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// isToken reports a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
