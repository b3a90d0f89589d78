package gateway

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readBoth reads one answer with readAnswer and with http.ReadResponse.
type readResult struct {
	status        int
	statusText    string
	proto         string
	header        http.Header
	contentLength int64
	close         bool
	te            []string
	body          string
	trailer       http.Header
	err           bool
}

func readWith(raw, method string, own bool) readResult {
	br := bufio.NewReaderSize(strings.NewReader(raw), 4<<10)
	req := &http.Request{Method: method}
	var (
		resp *http.Response
		err  error
	)
	if own {
		resp, err = readAnswer(br, req, &upstreamBody{}, new(http.Response))
	} else {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return readResult{err: true}
	}
	b, err := io.ReadAll(resp.Body)
	r := readResult{status: resp.StatusCode, statusText: resp.Status, proto: resp.Proto, header: resp.Header,
		contentLength: resp.ContentLength, close: resp.Close, te: resp.TransferEncoding, body: string(b),
		trailer: resp.Trailer, err: err != nil}
	if len(r.te) == 0 {
		r.te = nil
	}
	if len(r.trailer) == 0 {
		r.trailer = nil
	}
	return r
}

var answerSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nuntil the end",
	"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 4\r\nx-a: 1\r\nX-A: 2\r\n\r\nbusy",
	"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/2.0 200 OK\r\n\r\n",
}

func TestReadAnswerReadsAsReadResponseDoes(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\nContent-Length: 1\r\n\r\nx"
	for _, raw := range append(answerSeeds, big) {
		for _, method := range []string{"GET", "HEAD"} {
			own, std := readWith(raw, method, true), readWith(raw, method, false)
			if !reflect.DeepEqual(own, std) {
				t.Errorf("%s %q:\nreadAnswer   %+v\nReadResponse %+v", method, raw, own, std)
			}
		}
	}
}

// FuzzReadAnswer checks readAnswer against http.ReadResponse on any
// answer: the same status, fields, framing, body and trailer, or both an
// error.
func FuzzReadAnswer(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		own, std := readWith(raw, method, true), readWith(raw, method, false)
		if own.err && std.err {
			return
		}
		if !reflect.DeepEqual(own, std) {
			t.Fatalf("%s %q:\nreadAnswer   %+v\nReadResponse %+v", method, raw, own, std)
		}
	})
}
