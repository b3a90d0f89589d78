package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	gojson "github.com/goccy/go-json"
)

// span is where a top-level field's value sits in a JSON document.
type span struct {
	start, end int
	found      bool
}

// fieldSpans is what topLevelFields finds: one span per key, in the
// keys' order. An array, so that finding them allocates nothing.
type fieldSpans [maxFields]span

// maxFields is the most keys topLevelFields looks for at once.
const maxFields = 4

// topLevelFields finds the values of the named top-level fields of a JSON
// object without decoding the rest into memory, so the gateway can read
// or replace a field and forward every other byte unchanged. Keys match
// exactly, after JSON unescaping, as encoding/json does for maps. A named
// field given twice is refused: a proxy and its upstream could read
// different values from it.
//
// The document is checked with go-json's Valid (five times faster than
// encoding/json's, which it agrees with: FuzzJSONValid), then walked by
// a scanner that relies on that check: nothing is decoded or allocated
// (encoding/json's Decoder, used before, made a quarter of the gateway's
// allocations per request).
func topLevelFields(body []byte, keys ...string) (spans fieldSpans, err error) {
	if len(keys) > maxFields {
		panic("topLevelFields: too many keys")
	}
	if !gojson.Valid(body) {
		err := json.Unmarshal(body, new(json.RawMessage))
		if err == nil {
			err = errors.New("invalid document")
		}
		return spans, fmt.Errorf("not valid JSON: %w", err)
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return spans, errors.New("not a JSON object")
	}
	for i = skipSpace(body, i+1); body[i] != '}'; i = skipSpace(body, i) {
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
		ks := i
		i = skipString(body, i)
		key := body[ks:i]
		i = skipSpace(body, skipSpace(body, i)+1) // past the colon
		vs := i
		i = skipValue(body, i)
		if k := keyIndex(key, keys); k >= 0 {
			if spans[k].found {
				return spans, fmt.Errorf("field %q appears more than once", keys[k])
			}
			spans[k] = span{start: vs, end: i, found: true}
		}
	}
	return spans, nil
}

// keyIndex returns the index in keys of an object key (quoted: the
// string as written, quotes included), or -1.
func keyIndex(quoted []byte, keys []string) int {
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		var k string
		if json.Unmarshal(quoted, &k) != nil {
			return -1
		}
		return slices.Index(keys, k)
	}
	for i, k := range keys {
		if string(raw) == k {
			return i
		}
	}
	return -1
}

// The scanners below walk a document json.Valid accepted: each returns
// the index just past what it skipped.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString skips the string that starts at b[i] (a quote).
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue skips the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// splice replaces the found spans of body with values (same order). The
// result is appended to dst; body itself is returned when nothing is
// found.
func splice(dst, body []byte, spans []span, values [][]byte) []byte {
	type edit struct {
		span
		value []byte
	}
	var held [4]edit
	edits := held[:0]
	grow := 0
	for i, s := range spans {
		if s.found {
			edits = append(edits, edit{s, values[i]})
			grow += len(values[i]) - (s.end - s.start)
		}
	}
	if len(edits) == 0 {
		return body
	}
	for i := 1; i < len(edits); i++ { // by start; a handful of edits
		for j := i; j > 0 && edits[j].start < edits[j-1].start; j-- {
			edits[j], edits[j-1] = edits[j-1], edits[j]
		}
	}
	out := slices.Grow(dst, len(body)+max(grow, 0))
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start]...)
		out = append(out, e.value...)
		at = e.end
	}
	return append(out, body[at:]...)
}
