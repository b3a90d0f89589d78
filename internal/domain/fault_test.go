package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestFaultValidate(t *testing.T) {
	ms := func(n int) domain.Duration { return domain.Duration(time.Duration(n) * time.Millisecond) }
	cases := []struct {
		name   string
		f      domain.Fault
		status int    // the abort status after Validate, when valid
		err    string // a fragment of the error; "" for valid
	}{
		{"abort with the default status", domain.Fault{AbortPercent: 30}, 503, ""},
		{"abort with a status", domain.Fault{AbortPercent: 100, AbortStatus: 500}, 500, ""},
		{"abort 429", domain.Fault{AbortPercent: 0.5, AbortStatus: 429}, 429, ""},
		{"delay only", domain.Fault{DelayPercent: 100, Delay: ms(50)}, 0, ""},
		{"both", domain.Fault{AbortPercent: 10, AbortStatus: 599, DelayPercent: 5, Delay: domain.Duration(domain.MaxFaultDelay)}, 599, ""},
		{"smallest share", domain.Fault{AbortPercent: domain.MinFaultPercent}, 503, ""},
		{"nothing", domain.Fault{}, 0, "abort_percent or delay_percent"},
		{"negative abort", domain.Fault{AbortPercent: -1}, 0, "abort_percent -1"},
		{"abort above 100", domain.Fault{AbortPercent: 100.5}, 0, "abort_percent 100.5"},
		{"abort NaN", domain.Fault{AbortPercent: math.NaN()}, 0, "abort_percent NaN"},
		{"abort infinite", domain.Fault{AbortPercent: math.Inf(1)}, 0, "abort_percent"},
		{"abort too small a share", domain.Fault{AbortPercent: 1e-9}, 0, "abort_percent"},
		{"status 200", domain.Fault{AbortPercent: 10, AbortStatus: 200}, 0, "400 to 599"},
		{"status 600", domain.Fault{AbortPercent: 10, AbortStatus: 600}, 0, "400 to 599"},
		{"status without share", domain.Fault{AbortStatus: 500, DelayPercent: 1, Delay: ms(1)}, 0, "needs abort_percent"},
		{"delay share above 100", domain.Fault{DelayPercent: 101, Delay: ms(1)}, 0, "delay_percent 101"},
		{"delay share without delay", domain.Fault{DelayPercent: 50}, 0, "needs delay"},
		{"delay without share", domain.Fault{AbortPercent: 1, Delay: ms(10)}, 0, "needs delay_percent"},
		{"negative delay", domain.Fault{DelayPercent: 1, Delay: ms(-1)}, 0, "above 0"},
		{"delay too long", domain.Fault{DelayPercent: 1, Delay: domain.Duration(domain.MaxFaultDelay + 1)}, 0, "at most 1m0s"},
	}
	for _, c := range cases {
		f := c.f
		err := f.Validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err == "" && f.AbortStatus != c.status:
			t.Errorf("%s: abort status %d, want %d", c.name, f.AbortStatus, c.status)
		case c.err != "" && (!errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want ErrInvalid naming %q", c.name, err, c.err)
		}
	}
}

// TestFaultJSON: the delay is a Go duration string both ways; a number
// or a word is refused.
func TestFaultJSON(t *testing.T) {
	f := domain.Fault{AbortPercent: 30, AbortStatus: 503, DelayPercent: 100, Delay: domain.Duration(1500 * time.Millisecond)}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"abort_percent":30,"abort_status":503,"delay_percent":100,"delay":"1.5s"}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	var back domain.Fault
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	if b, _ := json.Marshal(domain.Fault{AbortPercent: 5, AbortStatus: 500}); string(b) != `{"abort_percent":5,"abort_status":500}` {
		t.Fatalf("a fault without delay = %s", b)
	}
	for _, in := range []string{`{"delay":50}`, `{"delay":"soon"}`, `{"delay":"50"}`} {
		if err := json.Unmarshal([]byte(in), &back); err == nil {
			t.Errorf("%s was accepted", in)
		}
	}
	if s := f.String(); s != "abort 30% with 503, delay 1.5s on 100%" {
		t.Errorf("String() = %q", s)
	}
}

// TestDeploymentValidatesFaults: a stored deployment's faults are checked
// with the split, and get their default status.
func TestDeploymentValidatesFaults(t *testing.T) {
	d := domain.Deployment{Model: "m", Environment: "staging", Versions: []domain.ServedVersion{
		{Version: 1, Weight: 90}, {Version: 2, Weight: 10, Fault: &domain.Fault{AbortPercent: 30}},
	}}
	if err := d.Validate(); err != nil || d.Versions[1].Fault.AbortStatus != 503 {
		t.Fatalf("Validate = %v, fault %+v", err, d.Versions[1].Fault)
	}
	d.Versions[1].Fault = &domain.Fault{AbortPercent: 300}
	if err := d.Validate(); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("a bad fault: %v", err)
	}
}
