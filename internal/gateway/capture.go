package gateway

// capture keeps a copy of the bytes of an answer written to the client,
// up to a limit: the shadow comparison reads the primary's answer from
// it, and the idempotent-replay store keeps it. Past the limit it keeps
// nothing more and reports itself truncated, so a consumer never mistakes
// a prefix for the whole answer.
type capture struct {
	buf       []byte
	limit     int
	truncated bool
}

// startCapture makes the answer's bytes kept, up to limit, from now on;
// a second caller raises the limit. It must be called before the answer
// starts.
func (x *exchange) startCapture(limit int) *capture {
	if c := x.w.capture; c != nil {
		c.limit = max(c.limit, limit)
		return c
	}
	x.w.capture = &capture{limit: limit}
	return x.w.capture
}

func (c *capture) write(b []byte) {
	if c.truncated {
		return
	}
	if len(c.buf)+len(b) > c.limit {
		c.truncated, c.buf = true, nil
		return
	}
	c.buf = append(c.buf, b...)
}

// bytes returns the whole answer, or false when it outgrew the limit.
func (c *capture) bytes() ([]byte, bool) {
	if c == nil || c.truncated {
		return nil, false
	}
	return c.buf, true
}
