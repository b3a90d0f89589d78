package notify

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FuzzWebhookURL: whatever an admin sends, the URL check either refuses it
// as invalid or returns an http(s) URL with a host and no credentials,
// which passes the check again unchanged.
func FuzzWebhookURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example/x?token=a", "http://127.0.0.1:8080/", "http://[::1]/h", "ftp://x/", "http://u:p@x/",
		"http://169.254.169.254/", "http://0x7f.1/", "http://2852039166/", "https://x/#f", "http:x", "//x/y", "http://x:0/",
		"HTTP://Hooks.Example/A", "http://x/%zz", "http://[fe80::1%25eth0]/", "http://x/\u00e9", "",
	} {
		f.Add(s)
	}
	svc := NewService(ServiceConfig{})
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := svc.checkURL(raw)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("checkURL(%q): %v, not ErrInvalid", raw, err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
			t.Fatalf("checkURL(%q) accepted %q", raw, got)
		}
		again, err := svc.checkURL(got)
		if err != nil || again != got {
			t.Fatalf("checkURL(%q) = %q, which checks as %q, %v", raw, got, again, err)
		}
	})
}

// FuzzEventPatterns: a pattern is refused as invalid or it subscribes to
// at least one event type.
func FuzzEventPatterns(f *testing.F) {
	for _, s := range []string{"*", "promotion.*", "promotion.approved", "promotion", ".*", "promotion.approved.*", "a.b.c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		ps, err := ParsePatterns(strings.Split(p, ","))
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ParsePatterns(%q): %v, not ErrInvalid", p, err)
			}
			return
		}
		for _, one := range ps {
			matched := false
			for _, typ := range EventTypes {
				matched = matched || Subscribed([]string{one}, typ)
			}
			if !matched {
				t.Fatalf("pattern %q was accepted but matches no event type", one)
			}
		}
	})
}
