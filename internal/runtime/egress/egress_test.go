package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// everywhere allows every address, to show what stays refused regardless.
func everywhere() *Policy {
	return &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		name   string
		policy *Policy
		url    string
		want   string // "" accepts; otherwise a substring of the error
	}{
		{"loopback v4", nil, "http://127.0.0.1:9000", ""},
		{"loopback v4 with path", nil, "http://127.0.0.1:9000/serving/", ""},
		{"loopback elsewhere in 127/8", nil, "https://127.3.2.1/", ""},
		{"loopback v6", nil, "http://[::1]:8080", ""},
		{"hostname", nil, "http://localhost:8000", ""},
		{"remote hostname checked at dial time", nil, "https://triton.models.svc.cluster.local:8000", ""},
		{"private address when allowlisted", &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "http://10.1.2.3:8080", ""},
		{"allowlist written as mapped prefix", &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, "http://10.1.2.3:8080", ""},
		{"anything routable when everything is allowed", everywhere(), "http://203.0.113.7/", ""},

		{"ftp", nil, "ftp://127.0.0.1/", `scheme "ftp"`},
		{"file", nil, "file:///etc/passwd", `scheme "file"`},
		{"gopher", nil, "gopher://127.0.0.1:11211/", `scheme "gopher"`},
		{"no scheme", nil, "//127.0.0.1:9000", "no scheme"},
		{"host:port without scheme", nil, "127.0.0.1:9000", "does not parse"},
		{"empty", nil, "", "no scheme"},
		{"no host", nil, "http://", "no host"},
		{"no host, path only", nil, "http:///v2", "no host"},
		{"opaque", nil, "http:127.0.0.1", "no host"},
		{"userinfo", nil, "http://user:secret@127.0.0.1/", "user name or password"},
		{"user only", nil, "http://admin@127.0.0.1/", "user name or password"},
		{"query", nil, "http://127.0.0.1/?a=1", "query or fragment"},
		{"fragment", nil, "http://127.0.0.1/#x", "query or fragment"},
		{"port zero", nil, "http://127.0.0.1:0/", "port"},
		{"port too big", nil, "http://127.0.0.1:65536/", "port"},
		{"not allowlisted", nil, "http://10.0.0.5:8080/", "not in the egress allowlist (127.0.0.0/8, ::1/128)"},
		{"public not allowlisted", nil, "http://8.8.8.8/", "not in the egress allowlist"},

		{"metadata", everywhere(), "http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"metadata even if allowlisted exactly", &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}, "http://169.254.169.254/", "cloud metadata"},
		{"ECS task metadata", everywhere(), "http://169.254.170.2/v2/credentials", "ECS"},
		{"link-local v4", everywhere(), "http://169.254.1.1/", "link-local"},
		{"link-local v6", everywhere(), "http://[fe80::1]/", "link-local"},
		{"link-local v6 with zone", everywhere(), "http://[fe80::1%25eth0]:80/", "link-local"},
		{"AWS IPv6 metadata", everywhere(), "http://[fd00:ec2::254]/", "AWS IPv6 metadata"},
		{"Alibaba metadata", everywhere(), "http://100.100.100.200/latest/meta-data/", "Alibaba"},
		{"Oracle metadata", everywhere(), "http://192.0.0.192/opc/v2/", "Oracle"},
		{"Azure wireserver", everywhere(), "http://168.63.129.16/", "Azure"},
		{"unspecified v4", everywhere(), "http://0.0.0.0:8080/", "unspecified"},
		{"this network", everywhere(), "http://0.1.2.3/", "unspecified"},
		{"unspecified v6", everywhere(), "http://[::]:8080/", "unspecified"},
		{"multicast v4", everywhere(), "http://224.0.0.1/", "multicast"},
		{"multicast v6", everywhere(), "http://[ff02::1]/", "multicast"},
		{"broadcast", everywhere(), "http://255.255.255.255/", "broadcast"},
		{"IPv4-mapped metadata", everywhere(), "http://[::ffff:169.254.169.254]/", "cloud metadata"},
		{"IPv4-mapped metadata in hex", everywhere(), "http://[::ffff:a9fe:a9fe]/", "cloud metadata"},
		{"IPv4-mapped loopback, default policy", nil, "http://[::ffff:127.0.0.1]:9000/", ""},
		{"NAT64 metadata", everywhere(), "http://[64:ff9b::a9fe:a9fe]/", "embedding 169.254.169.254"},
		{"6to4 metadata", everywhere(), "http://[2002:a9fe:a9fe::1]/", "embedding 169.254.169.254"},
		{"IPv4-compatible", everywhere(), "http://[::a9fe:a9fe]/", "IPv4-compatible"},

		{"decimal IPv4", everywhere(), "http://2852039166/", "169.254.169.254 written in a non-standard form"},
		{"hex IPv4", everywhere(), "http://0xa9fea9fe/", "169.254.169.254 written in a non-standard form"},
		{"octal IPv4", everywhere(), "http://0251.0376.0251.0376/", "169.254.169.254 written in a non-standard form"},
		{"mixed IPv4", everywhere(), "http://169.0xfe.43518/", "169.254.169.254 written in a non-standard form"},
		{"short loopback", nil, "http://127.1:9000/", "127.0.0.1 written in a non-standard form"},
		{"leading zero", nil, "http://127.000.000.001/", "non-standard form"},
		{"trailing dot metadata", everywhere(), "http://169.254.169.254./", "cloud metadata"},
		{"numeric last label", everywhere(), "http://example.123/", "ends in a number"},
		{"out of range octet", everywhere(), "http://1.2.3.256/", "ends in a number"},
		{"percent-encoded metadata", everywhere(), "http://169.254.169.%32%35%34/", "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.policy.CheckURL(tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want accepted", tt.url, err)
				}
				if u == nil || u.Hostname() == "" {
					t.Fatalf("CheckURL(%q) returned %v", tt.url, u)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckURL(%q) accepted it, want an error containing %q", tt.url, tt.want)
			}
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("CheckURL(%q) = %v, want it to wrap domain.ErrInvalid", tt.url, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckURL(%q) = %q, want it to contain %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	p := everywhere()
	for _, s := range []string{
		"169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192",
		"169.254.0.1", "fe80::abcd", "0.0.0.0", "::", "224.1.2.3", "239.255.255.250", "ff05::2",
		"64:ff9b::6464:64c8", // NAT64 of 100.100.100.200
	} {
		if err := p.CheckAddr(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckAddr(%s) = %v, want refused even with everything allowlisted", s, err)
		}
	}
	for _, s := range []string{"10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1", "::1", "::ffff:10.0.0.1", "64:ff9b::808:808"} {
		if err := p.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", s, err)
		}
	}
	if err := p.CheckAddr(netip.Addr{}); !errors.Is(err, ErrRefused) {
		t.Errorf("CheckAddr(zero) = %v, want refused", err)
	}
	var def *Policy
	if err := def.CheckAddr(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("nil policy refuses loopback: %v", err)
	}
	if err := def.CheckAddr(netip.MustParseAddr("10.0.0.1")); !errors.Is(err, ErrRefused) {
		t.Errorf("nil policy allows 10.0.0.1: %v", err)
	}
}

// TestControlChecksResolvedAddress calls the dial-time check with the
// addresses a resolver could hand back for an innocent-looking name.
func TestControlChecksResolvedAddress(t *testing.T) {
	p := everywhere()
	for _, tt := range []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "10.0.0.1:80", true},
		{"tcp6", "[2001:db8::1]:443", true},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false},
		{"tcp6", "[fd00:ec2::254]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"tcp4", "0.0.0.0:80", false},
		{"udp4", "10.0.0.1:53", false},
		{"tcp", "not-an-address:80", false},
	} {
		err := p.control(tt.network, tt.address, nil)
		if tt.ok != (err == nil) {
			t.Errorf("control(%s, %s) = %v, want ok=%v", tt.network, tt.address, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("control(%s, %s) = %v, want ErrRefused", tt.network, tt.address, err)
		}
	}
}

// TestDialTimeRefusal shows that a hostname passing CheckURL is still
// refused when it resolves to an address outside the policy: "localhost"
// resolves to loopback, which this policy does not allow.
func TestDialTimeRefusal(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	noLoopback := &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	target := "http://localhost:" + port + "/"
	if _, err := noLoopback.CheckURL(target); err != nil {
		t.Fatalf("CheckURL(%q) = %v; a hostname should pass until it is dialled", target, err)
	}
	c := noLoopback.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Get(target)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded through a policy that does not allow loopback", target)
	}
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not in the egress allowlist") {
		t.Fatalf("GET %s = %v, want an egress refusal naming the allowlist", target, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("server saw %d requests; the connection should never have been made", hits.Load())
	}

	// The default policy reaches the same server.
	d := Default().Client()
	defer d.CloseIdleConnections()
	resp, err = d.Get(target)
	if err != nil {
		t.Fatalf("GET %s with the default policy: %v", target, err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", hits.Load())
	}
}

// TestTransportRefusesNumericHosts: Go's own resolver would send
// "2852039166" to DNS while getaddrinfo reads it as 169.254.169.254; the
// transport refuses such hosts before either resolver sees them.
func TestTransportRefusesNumericHosts(t *testing.T) {
	c := everywhere().Client()
	defer c.CloseIdleConnections()
	for _, host := range []string{"2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.169.254.", "0"} {
		u := "http://" + host + "/latest/meta-data/"
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s succeeded", u)
			continue
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("GET %s = %v, want an egress refusal", u, err)
		}
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var reached atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "secret")
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	defer redirector.Close()

	c := Default().Client()
	defer c.CloseIdleConnections()
	resp, err := c.Get(redirector.URL + "/v2/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 passed back unfollowed", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, target.URL) {
		t.Fatalf("Location %q", loc)
	}
	if reached.Load() != 0 {
		t.Fatalf("the redirect target was reached %d times", reached.Load())
	}
}

func TestTransportUsesNoProxy(t *testing.T) {
	if tr := Default().Transport(); tr.Proxy != nil {
		t.Fatal("the egress transport must not use a proxy: a proxy dials past the address check")
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow("10.0.0.0/8, fd00::/8 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "fd00::/8", "192.168.1.5/32"}
	if len(got) != len(want) {
		t.Fatalf("ParseAllow = %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8"} {
		if _, err := ParseAllow(bad); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseAllow(%q) = %v, want ErrInvalid naming the entry", bad, err)
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"2852039166":          "169.254.169.254",
		"0xa9fea9fe":          "169.254.169.254",
		"0XA9FEA9FE":          "169.254.169.254",
		"0251.0376.0251.0376": "169.254.169.254",
		"169.254.43518":       "169.254.169.254",
		"127.1":               "127.0.0.1",
		"0":                   "0.0.0.0",
		"0x7f.1":              "127.0.0.1",
		"4294967295":          "255.255.255.255",
	} {
		a, ok := parseLegacyIPv4(in)
		if !ok || a.String() != want {
			t.Errorf("parseLegacyIPv4(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"4294967296", "1.2.3.4.5", "256.1", "1.2.3.256", "08", "0xg", "", "1..2", "1.2.65536"} {
		if a, ok := parseLegacyIPv4(in); ok {
			t.Errorf("parseLegacyIPv4(%q) = %v, want not an address", in, a)
		}
	}
}

// FuzzCheckURL checks that CheckURL never panics, that every refusal wraps
// ErrInvalid, and that every URL it accepts has the promised shape — even
// under a policy that allows every routable address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:9000", "http://[::ffff:169.254.169.254]/", "http://2852039166/",
		"http://0xa9fea9fe/", "http://user@127.0.0.1/", "https://localhost/v1", "http://[fe80::1%25lo]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range []*Policy{nil, everywhere()} {
			u, err := p.CheckURL(raw)
			if err != nil {
				if !errors.Is(err, domain.ErrInvalid) {
					t.Fatalf("CheckURL(%q) = %v, want it to wrap ErrInvalid", raw, err)
				}
				continue
			}
			if u.Scheme != "http" && u.Scheme != "https" {
				t.Fatalf("CheckURL(%q) accepted scheme %q", raw, u.Scheme)
			}
			if u.User != nil {
				t.Fatalf("CheckURL(%q) accepted userinfo", raw)
			}
			host := u.Hostname()
			if host == "" {
				t.Fatalf("CheckURL(%q) accepted an empty host", raw)
			}
			if a, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
				if why := refusedWhy(a.WithZone("").Unmap()); why != "" {
					t.Fatalf("CheckURL(%q) accepted %s, which is %s", raw, a, why)
				}
				if err := p.control("tcp", netip.AddrPortFrom(a, 80).String(), nil); err != nil {
					t.Fatalf("CheckURL(%q) accepted %s but the dialer refuses it: %v", raw, a, err)
				}
			} else if endsInNumber(strings.TrimSuffix(host, ".")) {
				t.Fatalf("CheckURL(%q) accepted the numeric host %q", raw, host)
			}
			// What was accepted parses again to the same place.
			again, err := url.Parse(u.String())
			if err != nil || again.Hostname() != host {
				t.Fatalf("CheckURL(%q) returned %q, which reparses to %v, %v", raw, u, again, err)
			}
		}
	})
}
