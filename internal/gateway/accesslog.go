package gateway

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// This file writes the gateway's access log, one JSON line per request,
// without going through log/slog: building thirteen slog attributes and
// running them through the JSON handler cost about a twentieth of the
// gateway's CPU per request. The line is byte for byte what slog's
// JSONHandler writes for the same record (accesslog_test.go holds it to
// that), so the access log reads as the rest of the server's log does.
// Config.AccessLog turns it on; without it the lines go through Log.

// accessEntry is what one access-log line says.
type accessEntry struct {
	time         time.Time
	level        slog.Level
	requestID    string
	method       string
	path         string
	status       int
	bytes        int64
	duration     time.Duration
	model        string
	version      int
	environment  string
	fallbackFrom int
	attempts     int
	traceID      string
	routedBy     string
}

// accessMsg is the message of every access-log line.
const accessMsg = "inference request"

// accessLog writes entries to w, each line in one Write.
type accessLog struct {
	w    io.Writer
	bufs sync.Pool
}

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{w: w, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}}
}

func (a *accessLog) write(e *accessEntry) {
	bp := a.bufs.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], e)
	_, _ = a.w.Write(b)
	if cap(b) <= 16<<10 {
		*bp = b
		a.bufs.Put(bp)
	}
}

// appendAccessLine appends e as slog's JSONHandler writes a record with
// these attributes, newline included.
func appendAccessLine(b []byte, e *accessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = appendJSONString(b, e.level.String())
	b = append(b, `,"msg":"`+accessMsg+`","request_id":`...)
	b = appendJSONString(b, e.requestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(e.duration), 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, e.model)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(e.version), 10)
	b = append(b, `,"environment":`...)
	b = appendJSONString(b, e.environment)
	b = append(b, `,"fallback_from":`...)
	b = strconv.AppendInt(b, int64(e.fallbackFrom), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.attempts), 10)
	b = append(b, `,"trace_id":`...)
	b = appendJSONString(b, e.traceID)
	b = append(b, `,"routed_by":`...)
	b = appendJSONString(b, e.routedBy)
	return append(b, "}\n"...)
}

// attrs gives the entry's fields as slog attributes, for a logger
// without an access-log writer.
func (e *accessEntry) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("request_id", e.requestID), slog.String("method", e.method),
		slog.String("path", e.path), slog.Int("status", e.status),
		slog.Int64("bytes", e.bytes), slog.Duration("duration", e.duration),
		slog.String("model", e.model), slog.Int("version", e.version),
		slog.String("environment", e.environment), slog.Int("fallback_from", e.fallbackFrom),
		slog.Int("attempts", e.attempts), slog.String("trace_id", e.traceID),
		slog.String("routed_by", e.routedBy),
	}
}

// appendJSONString appends s as a JSON string the way slog's JSON
// handler escapes it: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped,
// HTML characters left alone.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	plain := 0 // start of the run not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		var esc string
		size := 1
		switch {
		case c == '"':
			esc = `\"`
		case c == '\\':
			esc = `\\`
		case c == '\n':
			esc = `\n`
		case c == '\r':
			esc = `\r`
		case c == '\t':
			esc = `\t`
		case c < 0x20:
			esc = `\u00` + string(hexDigits[c>>4]) + string(hexDigits[c&0xf])
		default:
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				esc = `\ufffd`
			case r == '\u2028':
				esc = `\u2028`
			case r == '\u2029':
				esc = `\u2029`
			default:
				i += size // valid UTF-8 stays as it is
				continue
			}
		}
		b = append(b, s[plain:i]...)
		b = append(b, esc...)
		i += size
		plain = i
	}
	b = append(b, s[plain:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
