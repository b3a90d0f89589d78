package sqlstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	gojson "github.com/goccy/go-json"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
)

// Times are stored as fixed-width UTC text with nanoseconds (the audit
// log's format), so they round-trip exactly and sort as text.

func formatTime(t time.Time) string { return t.UTC().Format(audit.TimeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(audit.TimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// encodeJSON stores a map or struct as a JSON object; nil maps as {}.
// '<', '>' and '&' stay as they are (no HTML escaping).
func encodeJSON(what string, v any) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode %s: %v: %w", what, err, domain.ErrInvalid)
	}
	doc := strings.TrimSuffix(b.String(), "\n")
	if doc == "null" {
		return "{}", nil
	}
	return doc, nil
}

// decodeStrings reads a stored map; an empty object reads back as nil, so a
// nil map and an empty one are the same thing once stored.
func decodeStrings(what, s string) (map[string]string, error) {
	if s == "{}" || s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := gojson.UnmarshalNoEscape([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("stored %s: %w", what, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func decodeFloats(what, s string) (map[string]float64, error) {
	if s == "{}" || s == "" {
		return nil, nil
	}
	var m map[string]float64
	if err := gojson.UnmarshalNoEscape([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("stored %s: %w", what, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func decodeLineage(s string) (domain.Lineage, error) {
	var l domain.Lineage
	if err := gojson.UnmarshalNoEscape([]byte(s), &l); err != nil {
		return l, fmt.Errorf("stored lineage: %w", err)
	}
	if len(l.Params) == 0 {
		l.Params = nil
	}
	if len(l.Dependencies) == 0 {
		l.Dependencies = nil
	}
	return l, nil
}

// Cursors are opaque to callers: base64url of a one-letter list kind, ':'
// and the last key of the page. The kind stops a cursor of one list from
// being replayed on another.
const (
	cursorModel      = "m"
	cursorVersion    = "v"
	cursorToken      = "t"
	cursorAudit      = "a"
	cursorDeployment = "d"
)

func encodeCursor(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

// decodeCursor returns the key of a cursor; "" for the first page.
func decodeCursor(kind, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", badCursor(cursor)
	}
	key, ok := strings.CutPrefix(string(b), kind+":")
	if !ok || key == "" {
		return "", badCursor(cursor)
	}
	return key, nil
}

// decodeSeqCursor returns the integer key of a cursor; 0 for the first page.
func decodeSeqCursor(kind, cursor string) (int64, error) {
	key, err := decodeCursor(kind, cursor)
	if err != nil || key == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < 1 {
		return 0, badCursor(cursor)
	}
	return n, nil
}

func badCursor(cursor string) error {
	if len(cursor) > 40 {
		cursor = cursor[:40] + "…"
	}
	return fmt.Errorf("page cursor %q was not returned by this list; pass the next cursor of the previous page, or none for the first: %w", cursor, domain.ErrInvalid)
}
