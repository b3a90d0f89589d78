package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is the reading side of the gateway's server (server.go): the
// connection's read buffer and request bodies, Content-Length or chunked.

const readBufSize = 4 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func getReadBuf() []byte { return *readBufs.Get().(*[]byte) }

func putReadBuf(b []byte) {
	if cap(b) == readBufSize {
		readBufs.Put(&b)
	}
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func getWriter(nc io.Writer) *bufio.Writer {
	w := writers.Get().(*bufio.Writer)
	w.Reset(nc)
	return w
}

func putWriter(w *bufio.Writer) {
	w.Reset(nil)
	writers.Put(w)
}

var errDeadline = os.ErrDeadlineExceeded

// connReader is a connection's read buffer: buf[r:w] is read and not yet
// consumed. It grows only for a head larger than the buffer.
type connReader struct {
	nc   net.Conn
	buf  []byte
	r, w int
}

func (b *connReader) buffered() int { return b.w - b.r }
func (b *connReader) bytes() []byte { return b.buf[b.r:b.w] }
func (b *connReader) consume(n int) { b.r += n }
func (b *connReader) push(c byte)   { b.makeRoom(2 * len(b.buf)); b.buf[b.w] = c; b.w++ }
func (b *connReader) reset()        { b.shrink(); b.r, b.w = 0, 0 }
func (b *connReader) shrink() {
	if len(b.buf) > readBufSize && b.r == b.w {
		b.buf = getReadBuf()
	}
}

// makeRoom makes space after w: the unread bytes move to the front, and
// the buffer doubles, up to limit, when they fill it.
func (b *connReader) makeRoom(limit int) {
	if b.w < len(b.buf) {
		return
	}
	if b.r > 0 {
		n := copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, n
		return
	}
	if len(b.buf) < limit {
		nb := make([]byte, min(2*len(b.buf), limit))
		copy(nb, b.buf[:b.w])
		b.buf = nb
	}
}

// fill reads once from the connection into the free space.
func (b *connReader) fill() (int, error) {
	b.makeRoom(0)
	if b.w == len(b.buf) {
		return 0, errors.New("read buffer full")
	}
	n, err := b.nc.Read(b.buf[b.w:])
	b.w += n
	return n, err
}

// bodyReader is the request body; the server reuses it per request.
type bodyReader struct {
	c       *srvConn
	chunked bool
	left    int64 // bytes left: of the body, or of the current chunk
	crlf    bool  // a chunk's data ended: its CRLF comes next
	done    bool  // read to its end
	err     error // sticky
}

func (b *bodyReader) reset(hd requestHead) {
	*b = bodyReader{c: b.c, chunked: hd.chunked, left: max(hd.contentLength, 0)}
	b.done = !hd.chunked && b.left == 0
}

func (b *bodyReader) Close() error { return nil }

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	c := b.c
	if c.continue100 && c.w.status == 0 {
		c.continue100 = false
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.chunked && b.left == 0 {
		if err := b.nextChunk(); err != nil {
			return 0, b.fail(err)
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.read(p)
	b.left -= int64(n)
	if b.left == 0 {
		if b.chunked {
			b.crlf = true
		} else {
			b.end()
		}
	}
	if err != nil && n == 0 {
		return 0, b.fail(err)
	}
	return n, nil
}

// read reads what is buffered, else reads the connection: straight into
// p when p is large, so a large body is not copied twice.
func (b *bodyReader) read(p []byte) (int, error) {
	rd := &b.c.rd
	if rd.buffered() == 0 {
		b.c.bodyDeadline()
		if len(p) >= len(rd.buf) {
			return rd.nc.Read(p)
		}
		rd.reset()
		if n, err := rd.fill(); n == 0 {
			return 0, err
		}
	}
	n := copy(p, rd.bytes())
	rd.consume(n)
	return n, nil
}

// bodyDeadline bounds the coming read of a body by BodyTimeout.
func (c *srvConn) bodyDeadline() {
	c.setReadDeadline(time.Now().Add(c.s.cfg.BodyTimeout))
	c.deadlineMoved = true
}

func (b *bodyReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	return err
}

// end marks the body read: the connection may now be watched.
func (b *bodyReader) end() {
	b.done = true
	b.c.state.CompareAndSwap(stBody, stReady)
}

// nextChunk reads a chunk's size line (after the previous chunk's CRLF);
// the last chunk's trailer fields are read and dropped.
func (b *bodyReader) nextChunk() error {
	if b.crlf {
		line, err := b.line()
		if err != nil {
			return err
		}
		if line != "" {
			return errors.New("malformed chunked body: chunk data longer than its size")
		}
		b.crlf = false
	}
	line, err := b.line()
	if err != nil {
		return err
	}
	if i := strings.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are ignored
	}
	line = trimOWS(line)
	if line == "" || len(line) > 15 {
		return errors.New("malformed chunked body: bad chunk size")
	}
	n, perr := strconv.ParseUint(line, 16, 63)
	if perr != nil {
		return errors.New("malformed chunked body: bad chunk size")
	}
	if n > 0 {
		b.left = int64(n)
		return nil
	}
	// The last chunk: trailer fields up to a blank line.
	total := 0
	for {
		line, err := b.line()
		if err != nil {
			return err
		}
		if line == "" {
			b.end()
			return nil
		}
		if total += len(line); total > b.c.s.cfg.MaxHeaderBytes {
			return errors.New("chunked body: trailer fields too large")
		}
	}
}

// maxChunkLine caps a chunk-size line, extensions included.
const maxChunkLine = 4 << 10

// line reads a line of the chunked framing, without its line end. The
// returned string is valid until the next read.
func (b *bodyReader) line() (string, error) {
	rd := &b.c.rd
	for {
		buf := rd.bytes()
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			l := buf[:i]
			rd.consume(i + 1)
			if n := len(l); n > 0 && l[n-1] == '\r' {
				l = l[:n-1]
			}
			return string(l), nil
		}
		if len(buf) > maxChunkLine {
			return "", errors.New("malformed chunked body: line too long")
		}
		b.c.bodyDeadline()
		rd.makeRoom(maxChunkLine + 2)
		n, err := rd.fill()
		if n == 0 && err != nil {
			return "", err
		}
	}
}

// discard reads the rest of a short unread body, so that the connection
// can carry the next request.
func (b *bodyReader) discard() bool {
	b.c.continue100 = false
	var buf [512]byte
	for !b.done {
		if _, err := b.Read(buf[:]); err != nil && err != io.EOF {
			return false
		}
	}
	return true
}
