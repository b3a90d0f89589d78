package gateway

import "testing"

func TestCaptureKeepsWholeAnswersOnly(t *testing.T) {
	c := &capture{limit: 8}
	c.write([]byte("abc"))
	c.write([]byte("defgh"))
	if b, ok := c.bytes(); !ok || string(b) != "abcdefgh" {
		t.Fatalf("at the limit: %q %v", b, ok)
	}
	c.write([]byte("i"))
	if b, ok := c.bytes(); ok || b != nil {
		t.Fatalf("past the limit: %q %v", b, ok)
	}
	c.write([]byte("j"))
	if _, ok := c.bytes(); ok {
		t.Fatal("a truncated capture became whole again")
	}
	var none *capture
	if _, ok := none.bytes(); ok {
		t.Fatal("no capture reported an answer")
	}
}
