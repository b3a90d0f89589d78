package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/slipway-ml/slipway/internal/deployment"
)

// routedBy says how a request's version was chosen; the access log names
// it, so that "why did this caller get version 3" has an answer.
type routedBy uint8

const (
	routedNone   routedBy = iota // not routed (yet)
	routedPin                    // the path named the version
	routedRule                   // a match rule
	routedSticky                 // the sticky key's bucket
	routedSplit                  // a random draw by the weights
)

func (b routedBy) String() string {
	switch b {
	case routedPin:
		return "pin"
	case routedRule:
		return "rule"
	case routedSticky:
		return "sticky"
	case routedSplit:
		return "split"
	}
	return ""
}

// pickVersion applies a route's policy to one unpinned request, in the
// order domain.Routing documents: the first match rule whose header
// matches sends it to the rule's version; else a sticky key present in
// the request picks by its bucket; else draw(100) picks at random. A rule
// whose version could not start (no target) is skipped, so its requests
// take the split. It returns nil when no version takes traffic.
//
// It allocates nothing for header rules and header keys; a JSON-field key
// costs a scan of the body (jsonStickyKey), paid only by routes that
// configure one.
func pickVersion(rt *deployment.Route, h http.Header, body []byte, draw func(int) int) (*deployment.RouteVersion, routedBy) {
	for i := range rt.Rules {
		m := &rt.Rules[i]
		if m.Target != nil && ruleMatches(m, h) {
			return m.Target, routedRule
		}
	}
	if k := rt.Sticky; k != nil {
		if k.Header != "" {
			if v, ok := headerStickyKey(h, k.Header); ok {
				return rt.Pick(rt.Bucket([]byte(v))), routedSticky
			}
		} else if v, ok := jsonStickyKey(body, k.Field); ok {
			return rt.Pick(rt.Bucket(v)), routedSticky
		}
	}
	return rt.Pick(draw(100)), routedSplit
}

// ruleMatches reports whether any value of the rule's header matches it;
// a presence rule matches a header sent with any value, even an empty one.
func ruleMatches(m *deployment.RouteRule, h http.Header) bool {
	vs := h[textproto.CanonicalMIMEHeaderKey(m.Header)]
	if len(vs) == 0 {
		return m.Matches("", false)
	}
	for _, v := range vs {
		if m.Matches(v, true) {
			return true
		}
	}
	return false
}

// headerStickyKey is the first value of the header; an empty value counts
// as absent (a caller without an ID is not one caller).
func headerStickyKey(h http.Header, name string) (string, bool) {
	vs := h[textproto.CanonicalMIMEHeaderKey(name)]
	if len(vs) == 0 || vs[0] == "" {
		return "", false
	}
	return vs[0], true
}

// jsonStickyKey reads the field at a dotted path of a JSON body: each
// segment is a top-level field of the object the previous one named. A
// string's key is its unescaped text and a number's its literal; a
// boolean is its literal too. A missing field, an empty string, null, an
// object or array, a body that is not a JSON object and a named field
// given twice all count as absent: the request takes the random split,
// and the body's faults are the model's to answer.
func jsonStickyKey(body []byte, path string) ([]byte, bool) {
	if len(body) == 0 || path == "" {
		return nil, false
	}
	v := body
	for {
		seg, rest, more := strings.Cut(path, ".")
		spans, err := topLevelFields(v, seg)
		if err != nil || !spans[0].found {
			return nil, false
		}
		v = v[spans[0].start:spans[0].end]
		if !more {
			break
		}
		path = rest
	}
	switch v[0] {
	case '{', '[', 'n':
		return nil, false
	case '"':
		if s := v[1 : len(v)-1]; bytes.IndexByte(s, '\\') < 0 {
			return s, len(s) > 0
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil || s == "" {
			return nil, false
		}
		return []byte(s), true
	}
	return v, true
}
