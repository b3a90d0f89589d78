package process

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Reset: time.Minute}
	tests := []struct {
		name         string
		prev, ranFor time.Duration
		want         time.Duration
	}{
		{"first failure", 0, 0, 100 * time.Millisecond},
		{"first failure after a long run", 0, time.Hour, 100 * time.Millisecond},
		{"doubles", 100 * time.Millisecond, time.Second, 200 * time.Millisecond},
		{"doubles again", 400 * time.Millisecond, 0, 800 * time.Millisecond},
		{"capped", 800 * time.Millisecond, 0, time.Second},
		{"stays capped", time.Second, 59 * time.Second, time.Second},
		{"reset after a healthy minute", time.Second, time.Minute, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := b.next(tt.prev, tt.ranFor); got != tt.want {
			t.Errorf("%s: next(%s, %s) = %s, want %s", tt.name, tt.prev, tt.ranFor, got, tt.want)
		}
	}
	d := Backoff{}.withDefaults()
	if d.Initial != 100*time.Millisecond || d.Max != 10*time.Second || d.Reset != time.Minute {
		t.Errorf("defaults = %+v", d)
	}
	var seq []time.Duration
	for delay, i := time.Duration(0), 0; i < 9; i++ {
		delay = d.next(delay, 0)
		seq = append(seq, delay)
	}
	if fmt.Sprint(seq) != "[100ms 200ms 400ms 800ms 1.6s 3.2s 6.4s 10s 10s]" {
		t.Errorf("a child that never stays up waits %v", seq)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if got := r.snapshot(); len(got) != 0 {
		t.Fatalf("empty ring = %q", got)
	}
	if got := r.tail(5); got != "; it printed nothing" {
		t.Fatalf("tail of empty ring = %q", got)
	}
	r.add("a")
	r.add("b")
	if got := r.snapshot(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("snapshot = %q", got)
	}
	for _, s := range []string{"c", "d", "e"} {
		r.add(s)
	}
	if got := r.snapshot(); !reflect.DeepEqual(got, []string{"c", "d", "e"}) {
		t.Fatalf("snapshot after wrapping = %q", got)
	}
	if got := r.tail(2); got != "; its last output:\n    d\n    e" {
		t.Fatalf("tail(2) = %q", got)
	}
}

func TestScanLines(t *testing.T) {
	long := strings.Repeat("x", 10000)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"empty lines kept", "a\n\nb\n", []string{"a", "", "b"}},
		{"nothing", "", nil},
		{"long line cut", long + "\nafter\n", []string{long[:100] + "…", "after"}},
		{"long line without newline", long, []string{long[:100] + "…"}},
		{"exactly max", long[:100] + "\n", []string{long[:100]}},
		{"utf-8 passes", "héllo wörld\n", []string{"héllo wörld"}},
	}
	for _, tt := range tests {
		for _, reader := range []string{"whole", "one byte at a time"} {
			var got []string
			rd := strings.NewReader(tt.in)
			if reader == "whole" {
				scanLines(rd, 100, func(s string) { got = append(got, s) })
			} else {
				scanLines(iotest.OneByteReader(rd), 100, func(s string) { got = append(got, s) })
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s, %s: got %q, want %q", tt.name, reader, clip(got), clip(tt.want))
			}
		}
	}
	// A line far beyond the reader's buffer is cut at maxLine.
	var got []string
	scanLines(strings.NewReader(strings.Repeat("y", 3*maxLine)+"\nz\n"), maxLine, func(s string) { got = append(got, s) })
	if len(got) != 2 || len(got[0]) != maxLine+len("…") || got[1] != "z" {
		t.Errorf("a %d-byte line gave %d lines, first %d bytes", 3*maxLine, len(got), len(got[0]))
	}
}

func clip(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 40 {
			l = fmt.Sprintf("%s…(%d bytes)", l[:20], len(l))
		}
		out[i] = l
	}
	return out
}
