package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// span is where a top-level field's value sits in a JSON document.
type span struct {
	start, end int
	found      bool
}

// topLevelFields finds the values of the named top-level fields of a JSON
// object without decoding the rest into memory, so the gateway can read
// or replace a field and forward every other byte unchanged. Keys match
// exactly, after JSON unescaping, as encoding/json does for maps. A named
// field given twice is refused: a proxy and its upstream could read
// different values from it.
func topLevelFields(body []byte, keys ...string) ([]span, error) {
	spans := make([]span, len(keys))
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		if i := slices.Index(keys, key); i >= 0 {
			if spans[i].found {
				return nil, fmt.Errorf("field %q appears more than once", key)
			}
			end := int(dec.InputOffset())
			spans[i] = span{start: end - len(raw), end: end, found: true}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return spans, nil
}

// splice replaces the found spans of body with values (same order).
func splice(body []byte, spans []span, values [][]byte) []byte {
	type edit struct {
		span
		value []byte
	}
	var edits []edit
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
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out := make([]byte, 0, len(body)+max(grow, 0))
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start]...)
		out = append(out, e.value...)
		at = e.end
	}
	return append(out, body[at:]...)
}
