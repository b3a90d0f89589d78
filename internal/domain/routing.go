package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Routing is how a deployment's requests reach its versions beyond the
// weighted split. The gateway applies it in this order: the first match
// rule whose header matches sends the request to its version; else, with
// a sticky key present in the request, the key's bucket picks a version
// by the weights; else a random draw does. A shadow version gets a copy
// of a fraction of the requests, whose answers nobody sees.
//
// The zero value routes by weights alone.
type Routing struct {
	Sticky *StickyKey   `json:"sticky,omitempty"`
	Rules  []MatchRule  `json:"rules,omitempty"`
	Shadow *Shadow      `json:"shadow,omitempty"`
	Limits *RouteLimits `json:"limits,omitempty"`
}

// Bounds of a routing policy.
const (
	MaxMatchRules   = 32
	maxHeaderName   = 128
	maxHeaderValue  = 256
	maxFieldPath    = 4
	maxFieldSegment = 64
)

// IsZero reports whether the policy routes by weights alone.
func (r Routing) IsZero() bool {
	return r.Sticky == nil && len(r.Rules) == 0 && r.Shadow == nil && r.Limits == nil
}

// Validate checks the policy on its own and against the versions d
// serves: rules and the shadow must name served versions, and a shadow
// version takes no live traffic.
func (r Routing) Validate(d Deployment) error {
	if r.Sticky != nil {
		if err := r.Sticky.validate(); err != nil {
			return err
		}
	}
	if len(r.Rules) > MaxMatchRules {
		return fmt.Errorf("routing has %d match rules, at most %d allowed: %w", len(r.Rules), MaxMatchRules, ErrInvalid)
	}
	for i, m := range r.Rules {
		if err := m.validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i+1, err)
		}
		if !d.Serves(m.Version) {
			return fmt.Errorf("rule %d (%s) routes to version %d, which the deployment does not serve (serve it, at weight 0 if it should get no other traffic): %w", i+1, m, m.Version, ErrInvalid)
		}
	}
	if s := r.Shadow; s != nil {
		if err := s.validate(); err != nil {
			return err
		}
		if !d.Serves(s.Version) {
			return fmt.Errorf("shadow version %d is not served by the deployment (serve it at weight 0): %w", s.Version, ErrInvalid)
		}
		for _, v := range d.Versions {
			if v.Version == s.Version && v.Weight != 0 {
				return fmt.Errorf("shadow version %d has weight %d; a shadow version takes no live traffic, so set its weight to 0: %w", s.Version, v.Weight, ErrInvalid)
			}
		}
	}
	if r.Limits != nil {
		if err := r.Limits.validate(); err != nil {
			return err
		}
	}
	return nil
}

// StickyKey names the part of a request that keeps one caller on one
// version: a header or a JSON body field (dotted path). Exactly one is set.
type StickyKey struct {
	Header string `json:"header,omitempty"`
	Field  string `json:"field,omitempty"`
}

// ParseStickyKey reads "header:NAME" or "json:FIELD[.FIELD…]".
func ParseStickyKey(s string) (StickyKey, error) {
	kind, name, ok := strings.Cut(strings.TrimSpace(s), ":")
	var k StickyKey
	switch {
	case !ok:
		return k, fmt.Errorf("sticky key %q must be header:NAME or json:FIELD: %w", truncate(s, 80), ErrInvalid)
	case strings.EqualFold(kind, "header"):
		k.Header = strings.TrimSpace(name)
	case strings.EqualFold(kind, "json"):
		k.Field = strings.TrimSpace(name)
	default:
		return k, fmt.Errorf("sticky key %q must start with header: or json:: %w", truncate(s, 80), ErrInvalid)
	}
	return k, k.validate()
}

func (k StickyKey) validate() error {
	switch {
	case k.Header != "" && k.Field != "":
		return fmt.Errorf("sticky key names both header %q and field %q; choose one: %w", truncate(k.Header, 40), truncate(k.Field, 40), ErrInvalid)
	case k.Header != "":
		return validateHeaderName(k.Header)
	case k.Field != "":
		return validateFieldPath(k.Field)
	}
	return fmt.Errorf("sticky key names neither a header nor a JSON field: %w", ErrInvalid)
}

// Path is the field's dotted path split into segments.
func (k StickyKey) Path() []string {
	if k.Field == "" {
		return nil
	}
	return strings.Split(k.Field, ".")
}

func (k StickyKey) String() string {
	if k.Header != "" {
		return "header:" + k.Header
	}
	return "json:" + k.Field
}

// MatchOp is how a match rule compares a header's value.
type MatchOp string

const (
	MatchEquals  MatchOp = "="  // the value equals
	MatchPrefix  MatchOp = "^=" // the value starts with
	MatchPresent MatchOp = ""   // the header is present, any value
)

// MatchRule sends requests whose header matches to a named version:
// segment routing, internal testers. Its text form, used by the CLI and
// the API alike, is
//
//	header:NAME=VALUE -> VERSION     the header equals VALUE
//	header:NAME^=PREFIX -> VERSION   the header starts with PREFIX
//	header:NAME -> VERSION           the header is present
//
// with optional spaces around "=", "^=" and "->", and VERSION a number,
// optionally written v3. Header names are case-insensitive; values are
// compared exactly.
type MatchRule struct {
	Header  string
	Op      MatchOp
	Value   string
	Version int
}

// ParseMatchRule reads a rule's text form.
func ParseMatchRule(s string) (MatchRule, error) {
	var m MatchRule
	bad := func(why string) (MatchRule, error) {
		return MatchRule{}, fmt.Errorf("match rule %q: %s; write header:NAME=VALUE -> VERSION, header:NAME^=PREFIX -> VERSION or header:NAME -> VERSION: %w", truncate(s, 80), why, ErrInvalid)
	}
	cond, ver, ok := cutLast(s, "->")
	if !ok {
		return bad("no \"-> VERSION\"")
	}
	v := strings.TrimSpace(ver)
	v = strings.TrimPrefix(v, "v")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || v != strconv.Itoa(n) {
		return bad(fmt.Sprintf("%q is not a version number", truncate(strings.TrimSpace(ver), 20)))
	}
	m.Version = n
	cond = strings.TrimSpace(cond)
	kind, rest, ok := strings.Cut(cond, ":")
	if !ok || !strings.EqualFold(kind, "header") {
		return bad("it must start with header:")
	}
	switch i := strings.IndexByte(rest, '='); {
	case i < 0:
		m.Header, m.Op = strings.TrimSpace(rest), MatchPresent
	case i > 0 && rest[i-1] == '^':
		m.Header, m.Op, m.Value = strings.TrimSpace(rest[:i-1]), MatchPrefix, strings.TrimSpace(rest[i+1:])
	default:
		m.Header, m.Op, m.Value = strings.TrimSpace(rest[:i]), MatchEquals, strings.TrimSpace(rest[i+1:])
	}
	if err := m.validate(); err != nil {
		return bad(strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error()))
	}
	return m, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func (m MatchRule) validate() error {
	if err := validateHeaderName(m.Header); err != nil {
		return err
	}
	if strings.HasSuffix(m.Header, "^") {
		return fmt.Errorf("header name %q may not end in ^ in a match rule (it would read as ^=): %w", truncate(m.Header, 40), ErrInvalid)
	}
	if m.Version < 1 {
		return fmt.Errorf("version %d is not a version number: %w", m.Version, ErrInvalid)
	}
	switch m.Op {
	case MatchPresent:
		if m.Value != "" {
			return fmt.Errorf("a presence rule takes no value: %w", ErrInvalid)
		}
		return nil
	case MatchEquals, MatchPrefix:
	default:
		return fmt.Errorf("operator %q is not one of = and ^=: %w", truncate(string(m.Op), 10), ErrInvalid)
	}
	if m.Value == "" {
		return fmt.Errorf("header %s: the value to match is empty (for any value, write header:%s -> VERSION): %w", m.Header, m.Header, ErrInvalid)
	}
	if len(m.Value) > maxHeaderValue {
		return fmt.Errorf("the value to match is %d bytes, at most %d allowed: %w", len(m.Value), maxHeaderValue, ErrInvalid)
	}
	for i := 0; i < len(m.Value); i++ {
		if c := m.Value[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("the value to match has a control character at byte %d: %w", i, ErrInvalid)
		}
	}
	if m.Value != strings.TrimSpace(m.Value) || strings.Contains(m.Value, "->") {
		return fmt.Errorf("the value to match may not start or end with a space or contain \"->\": %w", ErrInvalid)
	}
	return nil
}

// Matches reports whether a header value satisfies the rule; present says
// whether the header was sent at all.
func (m MatchRule) Matches(value string, present bool) bool {
	switch m.Op {
	case MatchEquals:
		return present && value == m.Value
	case MatchPrefix:
		return present && strings.HasPrefix(value, m.Value)
	}
	return present
}

// String is the rule's text form, which ParseMatchRule reads back.
func (m MatchRule) String() string {
	if m.Op == MatchPresent {
		return "header:" + m.Header + " -> " + strconv.Itoa(m.Version)
	}
	return "header:" + m.Header + string(m.Op) + m.Value + " -> " + strconv.Itoa(m.Version)
}

// MarshalJSON writes the rule's text form, with its "->" as is rather
// than HTML-escaped, for encoders that do not escape HTML either.
func (m MatchRule) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m.String()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads the rule's text form.
func (m *MatchRule) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a match rule is a string such as \"header:X-Tester=yes -> 3\": %w", ErrInvalid)
	}
	r, err := ParseMatchRule(s)
	if err != nil {
		return err
	}
	*m = r
	return nil
}

// Shadow mirrors a fraction of a deployment's requests to a version
// whose answers are compared with the primary's and then dropped.
type Shadow struct {
	Version int `json:"version"`
	// Percent of requests mirrored, in (0, 100].
	Percent float64 `json:"percent"`
}

// ParseShadow reads "VERSION=PERCENT", such as "3=10" or "3=12.5%".
func ParseShadow(s string) (Shadow, error) {
	v, p, ok := strings.Cut(strings.TrimSpace(s), "=")
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(v), "v"))
	if !ok || err != nil {
		return Shadow{}, fmt.Errorf("shadow %q must be VERSION=PERCENT, such as 3=10: %w", truncate(s, 40), ErrInvalid)
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(p), "%"), 64)
	if err != nil {
		return Shadow{}, fmt.Errorf("shadow %q: percent %q is not a number: %w", truncate(s, 40), truncate(p, 20), ErrInvalid)
	}
	sh := Shadow{Version: n, Percent: f}
	return sh, sh.validate()
}

func (s Shadow) validate() error {
	if s.Version < 1 {
		return fmt.Errorf("shadow version %d is not a version number: %w", s.Version, ErrInvalid)
	}
	if math.IsNaN(s.Percent) || s.Percent <= 0 || s.Percent > 100 {
		return fmt.Errorf("shadow percent %v must be above 0 and at most 100: %w", s.Percent, ErrInvalid)
	}
	return nil
}

// RouteLimits bound a deployment's traffic: a token-bucket rate over all
// its requests, and the requests each version may have in flight.
type RouteLimits struct {
	// RequestsPerSecond refills the bucket; 0 means no rate limit.
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
	// Burst is the bucket's size (default: one second of requests,
	// at least 1).
	Burst int `json:"burst,omitempty"`
	// MaxConcurrency is how many requests one version may have in
	// flight; 0 means unbounded.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// Bounds of limits.
const (
	maxRate        = 1e7
	maxBurst       = 1 << 24
	maxConcurrency = 1 << 20
)

func (l RouteLimits) validate() error {
	if math.IsNaN(l.RequestsPerSecond) || l.RequestsPerSecond < 0 || l.RequestsPerSecond > maxRate {
		return fmt.Errorf("limits: requests_per_second %v must be from 0 (no limit) to %g: %w", l.RequestsPerSecond, maxRate, ErrInvalid)
	}
	if l.Burst < 0 || l.Burst > maxBurst {
		return fmt.Errorf("limits: burst %d must be from 0 (one second of requests) to %d: %w", l.Burst, maxBurst, ErrInvalid)
	}
	if l.Burst > 0 && l.RequestsPerSecond == 0 {
		return fmt.Errorf("limits: burst %d needs requests_per_second: %w", l.Burst, ErrInvalid)
	}
	if l.MaxConcurrency < 0 || l.MaxConcurrency > maxConcurrency {
		return fmt.Errorf("limits: max_concurrency %d must be from 0 (unbounded) to %d: %w", l.MaxConcurrency, maxConcurrency, ErrInvalid)
	}
	return nil
}

// EffectiveBurst is Burst, or one second of requests (at least 1).
func (l RouteLimits) EffectiveBurst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.RequestsPerSecond)))
}

// validateHeaderName checks an HTTP field name (RFC 9110 token).
func validateHeaderName(h string) error {
	if h == "" {
		return fmt.Errorf("header name is empty: %w", ErrInvalid)
	}
	if len(h) > maxHeaderName {
		return fmt.Errorf("header name is %d bytes, at most %d allowed: %w", len(h), maxHeaderName, ErrInvalid)
	}
	for i := 0; i < len(h); i++ {
		if !isTokenChar(h[i]) {
			return fmt.Errorf("header name %q has %q, which HTTP header names may not contain: %w", truncate(h, 40), h[i], ErrInvalid)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validateFieldPath checks a dotted JSON field path: 1 to 4 non-empty
// segments of printable characters other than '.'.
func validateFieldPath(p string) error {
	segs := strings.Split(p, ".")
	if len(segs) > maxFieldPath {
		return fmt.Errorf("JSON field %q is %d levels deep, at most %d allowed: %w", truncate(p, 40), len(segs), maxFieldPath, ErrInvalid)
	}
	for _, s := range segs {
		if s == "" || len(s) > maxFieldSegment {
			return fmt.Errorf("JSON field %q needs 1 to %d characters between dots: %w", truncate(p, 40), maxFieldSegment, ErrInvalid)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c == 0x7f || c == '"' || c == '\\' {
				return fmt.Errorf("JSON field %q has %q, which a field path may not contain: %w", truncate(p, 40), c, ErrInvalid)
			}
		}
	}
	return nil
}
