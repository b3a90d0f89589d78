package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
)

// This file reads the head of an upstream's answer for the HTTP/1.1 proxy
// path (proxy.go) without http.ReadResponse, which builds a
// textproto.Reader, a string and a slice per field, canonical keys and a
// body wrapper per answer (a fifth of the objects a remote request
// allocated). An ordinary head that is all in the connection's buffer is
// cut from one string into one map; anything else — a head larger than
// the buffer, declared trailers, an unusual framing or field — goes to
// http.ReadResponse, which reads it as before (the bytes are only peeked
// until the head is known to be ordinary).

// readAnswer reads the next answer's head from br, for a request of req's
// method; body is the connection's reusable body reader, and reuse its
// reusable answer: an ordinary head is parsed into it and its header map
// (the answer is the connection's until it goes back to the pool).
func readAnswer(br *bufio.Reader, req *http.Request, body *upstreamBody, reuse *http.Response) (*http.Response, error) {
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf, headRescan(scanned)); n >= 0 {
			resp, ok := parseAnswerHead(string(buf[:n]), req.Method, reuse)
			if !ok {
				return http.ReadResponse(br, req)
			}
			_, _ = br.Discard(n)
			resp.Request = req
			body.frame(br, resp)
			return resp, nil
		}
		scanned = len(buf)
		if scanned >= br.Size() {
			return http.ReadResponse(br, req) // larger than the buffer
		}
		if _, err := br.Peek(scanned + 1); err != nil {
			if scanned > 0 {
				return http.ReadResponse(br, req) // names what is wrong
			}
			return nil, err
		}
	}
}

// parseAnswerHead parses an ordinary answer head into resp, clearing and
// reusing its header map; ok is false for anything http.ReadResponse
// should see. The field values are new for every answer: the client's
// answer holds them until it is written.
func parseAnswerHead(head, method string, resp *http.Response) (*http.Response, bool) {
	line, rest := nextLine(head)
	if len(line) < 12 || !strings.HasPrefix(line, "HTTP/1.") || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return nil, false
	}
	code, err := strconv.Atoi(line[9:12])
	if err != nil || code < 100 {
		return nil, false
	}
	h := resp.Header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	*resp = http.Response{
		Status: line[9:], StatusCode: code, Proto: line[:8], ProtoMajor: 1, ProtoMinor: int(line[7] - '0'),
		Header: h, ContentLength: -1,
	}
	var (
		slab    = make([]string, 0, 8)
		chunked bool
		keep    bool
	)
	for {
		line, rest = nextLine(rest)
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return nil, false
		}
		v := trimOWS(line[colon+1:])
		if !validFieldValue(v) {
			return nil, false
		}
		k := textproto.CanonicalMIMEHeaderKey(line[:colon])
		switch k {
		case "Content-Length":
			n, ok := parseContentLength(v)
			if !ok || resp.ContentLength >= 0 {
				return nil, false
			}
			resp.ContentLength = n
		case "Transfer-Encoding":
			if chunked || !strings.EqualFold(v, "chunked") {
				return nil, false
			}
			chunked = true
			continue // as http.ReadResponse: it moves to TransferEncoding
		case "Trailer":
			return nil, false
		case "Connection":
			for f := range strings.SplitSeq(v, ",") {
				switch f = textproto.TrimString(f); {
				case strings.EqualFold(f, "close"):
					resp.Close = true
				case strings.EqualFold(f, "keep-alive"):
					keep = true
				}
			}
		}
		slab = append(slab, v)
		if vs, ok := resp.Header[k]; ok {
			resp.Header[k] = append(vs, v)
		} else {
			resp.Header[k] = slab[len(slab)-1 : len(slab) : len(slab)]
		}
	}
	switch {
	case resp.ProtoMinor == 0:
		resp.Close = resp.Close || !keep
	case resp.Close:
		delete(resp.Header, "Connection") // as http.ReadResponse does
	}
	noBody := code < 200 || code == http.StatusNoContent || code == http.StatusNotModified || method == http.MethodHead
	switch {
	case chunked && (noBody || resp.ProtoMinor == 0):
		return nil, false
	case noBody:
		if method != http.MethodHead {
			resp.ContentLength = 0 // as http.ReadResponse: a HEAD answer keeps its declared length
		}
	case chunked:
		if resp.ContentLength >= 0 {
			return nil, false // both: let http.ReadResponse decide
		}
		resp.TransferEncoding = chunkedEncoding
	case resp.ContentLength < 0:
		resp.Close = true // the body ends with the connection
	}
	if noBody {
		resp.Body = http.NoBody
	}
	return resp, true
}

// upstreamBody is the body of an answer parsed by parseAnswerHead: a
// length, chunks (with trailers after them) or the rest of the
// connection. Each upstream connection has one, reused per answer.
type upstreamBody struct {
	br     *bufio.Reader
	resp   *http.Response
	left   int64     // bytes left of a body with a length; -1 none
	chunks io.Reader // the chunked reader; nil for other framings
	eof    bool
}

// frame makes resp's body read from br as its head says.
func (b *upstreamBody) frame(br *bufio.Reader, resp *http.Response) {
	if resp.Body == http.NoBody {
		return
	}
	*b = upstreamBody{br: br, resp: resp, left: resp.ContentLength}
	switch {
	case resp.TransferEncoding != nil:
		b.chunks, b.left = httputil.NewChunkedReader(br), -1
	case resp.ContentLength == 0:
		resp.Body = http.NoBody
		return
	}
	resp.Body = b
}

// whole returns a body of known length that is all in the buffer
// already, without reading it; take then reads it at once.
func (b *upstreamBody) whole() ([]byte, bool) {
	if b.eof || b.chunks != nil || b.left < 0 || b.left > int64(b.br.Buffered()) {
		return nil, false
	}
	p, err := b.br.Peek(int(b.left))
	return p, err == nil
}

// take reads the body whole returned.
func (b *upstreamBody) take() {
	_, _ = b.br.Discard(int(b.left))
	b.left, b.eof = 0, true
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	switch {
	case b.chunks != nil:
		n, err := b.chunks.Read(p)
		if err == io.EOF {
			if err = b.readTrailer(); err == nil {
				b.eof = true
				err = io.EOF
			}
		}
		return n, err
	case b.left >= 0:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	default:
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.eof = true
		}
		return n, err
	}
}

// readTrailer reads the fields after the last chunk into resp.Trailer.
func (b *upstreamBody) readTrailer() error {
	// As net/http's reader: no trailer is a bare CRLF; anything shorter
	// is a cut-off answer.
	if p, err := b.br.Peek(2); err != nil {
		return io.ErrUnexpectedEOF
	} else if p[0] == '\r' && p[1] == '\n' {
		_, _ = b.br.Discard(2)
		return nil
	}
	// A trailer must end within the buffer (as net/http requires), so
	// that a server cannot make the gateway read an endless one.
	if !crlfCRLFAhead(b.br) {
		return errors.New("the server's answer trailer does not end")
	}
	h, err := textproto.NewReader(b.br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if len(h) > 0 {
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		for k, vs := range h {
			b.resp.Trailer[k] = append(b.resp.Trailer[k], vs...)
		}
	}
	return nil
}

// crlfCRLFAhead reports whether a blank line (CRLF CRLF) arrives before
// the reader's buffer is full, reading as needed.
func crlfCRLFAhead(br *bufio.Reader) bool {
	for n := 4; ; n++ {
		p, err := br.Peek(n)
		if len(p) >= 4 && string(p[len(p)-4:]) == "\r\n\r\n" {
			return true
		}
		if err != nil {
			return false
		}
	}
}

func (b *upstreamBody) Close() error { return nil }
