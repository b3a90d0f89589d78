// Package egress owns the outbound policy for HTTP from slipway to model
// servers: which addresses a runtime may reach, checked on the resolved
// address at dial time so that DNS tricks and rebinding do not pass, and a
// client that never follows redirects. Link-local, cloud metadata,
// unspecified and multicast addresses are refused whatever the allowlist
// says. It imports domain and the standard library only; it knows nothing
// of runtimes, gateways or stores.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// ErrRefused is wrapped by every dial the policy refuses, so a caller can
// tell a refused address from a server that is down.
var ErrRefused = errors.New("refused by the egress policy")

// Policy says which addresses slipway may open connections to. The zero
// value and a nil *Policy allow loopback only (DefaultAllow).
type Policy struct {
	// Allow lists the prefixes a resolved address must fall in. Empty
	// means DefaultAllow. Addresses in the always-refused set stay refused
	// even when a prefix here covers them.
	Allow []netip.Prefix
}

// DefaultAllow is the allowlist when none is configured: loopback only, so
// a laptop install reaches its own model servers and nothing else.
func DefaultAllow() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}
}

// Default returns the loopback-only policy.
func Default() *Policy { return &Policy{Allow: DefaultAllow()} }

// ParseAllow turns configuration text ("10.0.0.0/8, fd00::/8") into
// prefixes, naming the entry that does not parse. A bare address means a
// single host.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("egress allowlist entry %q is neither a CIDR prefix nor an address: %w", f, domain.ErrInvalid)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("egress allowlist entry %q is not a CIDR prefix: %w", f, domain.ErrInvalid)
		}
		out = append(out, p)
	}
	return out, nil
}

// alwaysRefused are ranges no allowlist can open. Each carries the reason
// an error names.
var alwaysRefused = []struct {
	prefix netip.Prefix
	why    string
}{
	// Cloud metadata services: credentials live behind these.
	{netip.MustParsePrefix("169.254.169.254/32"), "a cloud metadata address (AWS, GCP, Azure, DigitalOcean, OpenStack …)"},
	{netip.MustParsePrefix("169.254.170.2/32"), "the AWS ECS task metadata address"},
	{netip.MustParsePrefix("169.254.0.23/32"), "the Tencent Cloud metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "the AWS IPv6 metadata address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "the Alibaba Cloud metadata address"},
	{netip.MustParsePrefix("192.0.0.192/32"), "the Oracle Cloud metadata address"},
	{netip.MustParsePrefix("168.63.129.16/32"), "the Azure host (WireServer) address"},
	// Whole classes.
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\"; the kernel routes it to the local host)"},
	{netip.MustParsePrefix("::/128"), "unspecified (the kernel routes it to the local host)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// embedsIPv4 are IPv6 ranges that carry an IPv4 address a translator or
// tunnel may deliver to: their IPv4 part is checked against the
// always-refused set too, so 64:ff9b::a9fe:a9fe is the metadata address.
var embedsIPv4 = []struct {
	prefix netip.Prefix
	offset int // byte offset of the IPv4 address in the 16 bytes
}{
	{netip.MustParsePrefix("64:ff9b::/96"), 12}, // NAT64, RFC 6052
	{netip.MustParsePrefix("64:ff9b:1::/48"), 12},
	{netip.MustParsePrefix("2002::/16"), 2}, // 6to4, RFC 3056
}

// CheckAddr reports whether a connection to addr is allowed, and why not.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry;
// zones are ignored.
func (p *Policy) CheckAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("address is not valid: %w", ErrRefused)
	}
	a := addr.WithZone("").Unmap()
	if why := refusedWhy(a); why != "" {
		return fmt.Errorf("address %s is %s and is never reachable from slipway: %w", addr, why, ErrRefused)
	}
	allow := p.allow()
	for _, pre := range allow {
		if pre.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("address %s is not in the egress allowlist (%s); an operator can add its range to the allowlist: %w",
		addr, joinPrefixes(allow), ErrRefused)
}

// refusedWhy returns why a (unmapped, zoneless) address is always refused,
// or "" when it is not.
func refusedWhy(a netip.Addr) string {
	for _, r := range alwaysRefused {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return "link-local or multicast"
	}
	if a.Is6() {
		b := a.As16()
		for _, e := range embedsIPv4 {
			if e.prefix.Contains(a) {
				v4 := netip.AddrFrom4([4]byte(b[e.offset : e.offset+4]))
				if why := refusedWhy(v4); why != "" {
					return fmt.Sprintf("an IPv6 address embedding %s, which is %s", v4, why)
				}
			}
		}
		// Deprecated IPv4-compatible addresses (::a.b.c.d, RFC 4291 §2.5.5.1):
		// nothing legitimate uses them, and some stacks map them to IPv4.
		if a != netip.IPv6Loopback() && netip.MustParsePrefix("::/96").Contains(a) {
			return "a deprecated IPv4-compatible IPv6 address"
		}
	}
	return ""
}

func (p *Policy) allow() []netip.Prefix {
	if p == nil || len(p.Allow) == 0 {
		return DefaultAllow()
	}
	out := make([]netip.Prefix, 0, len(p.Allow))
	for _, pre := range p.Allow {
		// An allowlist written as ::ffff:10.0.0.0/104 means 10.0.0.0/8:
		// addresses are unmapped before matching, so prefixes are too.
		if a := pre.Addr(); a.Is4In6() && pre.Bits() >= 96 {
			pre = netip.PrefixFrom(a.Unmap(), pre.Bits()-96)
		}
		out = append(out, pre.Masked())
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// CheckURL parses a model server's base URL and refuses what the policy
// would refuse anyway, so a bad URL fails when it is pushed rather than when
// it is deployed: only http and https, a host, no user:password, no
// numeric host in a non-standard form, and a literal IP must pass CheckAddr.
// A hostname is accepted here; its addresses are checked when it is dialled.
func (p *Policy) CheckURL(raw string) (*url.URL, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("url %q: %s: %w", truncate(raw, 200), fmt.Sprintf(format, a...), domain.ErrInvalid)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("does not parse (%v)", unwrapURLError(err))
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, bad("has no scheme; write http:// or https://")
	default:
		return nil, bad("scheme %q is not allowed; only http and https are", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, bad("has no host")
	}
	if u.User != nil {
		return nil, bad("carries a user name or password; model servers are reached without credentials in the URL")
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return nil, bad("has a query or fragment; give the server's base URL only")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return nil, bad("port %q is not a number from 1 to 65535", port)
		}
	}
	host := u.Hostname()
	if host == "" {
		return nil, bad("has no host")
	}
	if err := p.checkHost(host); err != nil {
		// Both errors are wrapped: the push is invalid, and the reason is
		// the egress policy.
		return nil, fmt.Errorf("url %q: %w: %w", truncate(raw, 200), err, domain.ErrInvalid)
	}
	return u, nil
}

// checkHost applies the address rules to a host that is a literal IP, and
// refuses a host that ends in a number but is not canonical dotted decimal
// ("2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "127.1"): the C
// resolver (getaddrinfo, used by Go on macOS and with cgo) reads those as
// IPv4 addresses, and browsers do too, so they are addresses in disguise.
func (p *Policy) checkHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(a)
	}
	trimmed := strings.TrimSuffix(host, ".")
	if a, err := netip.ParseAddr(trimmed); err == nil && a.Is4() {
		return p.CheckAddr(a)
	}
	if !endsInNumber(trimmed) {
		return nil
	}
	if a, ok := parseLegacyIPv4(trimmed); ok {
		return fmt.Errorf("host %q is the IPv4 address %s written in a non-standard form; write it as %s: %w", host, a, a, ErrRefused)
	}
	return fmt.Errorf("host %q ends in a number but is not an IPv4 address: %w", host, ErrRefused)
}

// endsInNumber follows the WHATWG URL standard: a host whose last label is
// all digits, or 0x followed by hex digits, is meant as an IPv4 address.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if allDigits(last, 10) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return allDigits(last[2:], 16)
	}
	return false
}

// parseLegacyIPv4 reads the inet_aton forms: one to four parts, each
// decimal, 0x-hex or 0-octal, the last part filling the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		n, ok := parseLegacyPart(part)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseLegacyPart(s string) (uint64, bool) {
	base := 10
	switch {
	case s == "":
		return 0, false
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true // "0x" is zero, as inet_aton reads it
		}
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if !allDigits(s, base) || len(s) > 16 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		n = n*uint64(base) + uint64(digitVal(s[i]))
		if n > 1<<32 {
			return 0, false
		}
	}
	return n, true
}

func allDigits(s string, base int) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if d := digitVal(s[i]); d < 0 || d >= base {
			return false
		}
	}
	return true
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func parsePort(s string) (int, error) {
	if !allDigits(s, 10) || len(s) > 5 {
		return 0, fmt.Errorf("port %q", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("port %q", s)
	}
	return n, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// control runs on every socket the transport opens, after name resolution
// and before connect, with the address the kernel will actually dial.
func (p *Policy) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("egress to %s over %s: only TCP is allowed: %w", address, network, ErrRefused)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress to %q: not an IP address and port: %w", address, ErrRefused)
	}
	if err := p.CheckAddr(ap.Addr()); err != nil {
		return fmt.Errorf("egress to %s: %w", address, err)
	}
	return nil
}

// Transport returns a transport whose every connection passes the policy.
// It uses no proxy (a proxy would dial on slipway's behalf, past the
// check). Each call returns a new transport with its own connection pool.
func (p *Policy) Transport() *http.Transport {
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   p.control,
	}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("egress to %q: %w", addr, ErrRefused)
			}
			// Resolvers differ on numeric hosts ("2852039166" is
			// 169.254.169.254 to getaddrinfo and a DNS name to Go's
			// resolver); refuse them before either sees them.
			if err := p.checkHost(host); err != nil {
				return nil, fmt.Errorf("egress to %s: %w", addr, err)
			}
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns a client over Transport that does not follow redirects: a
// model server that answers 3xx gets its answer passed back as is, so a
// redirect cannot send slipway somewhere the URL check never saw.
func (p *Policy) Client() *http.Client {
	return &http.Client{
		Transport: p.Transport(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
