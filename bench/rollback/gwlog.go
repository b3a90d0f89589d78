package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// gatewayLog reads the server's access log ("inference request" lines)
// as it grows. The line's time is taken when the gateway finished the
// request, right after it counted it in the live metrics the judge
// reads, so it is the gateway's own view of when the candidate
// answered, free of the client's scheduling delays (on a loaded machine
// the client may read an answer tens of milliseconds after the gateway
// wrote it). Info lines reach the file up to 100 ms late (logbuf).
type gatewayLog struct {
	path string
	off  int64
}

// access is one candidate answer as the gateway logged it.
type access struct {
	at     time.Time
	status int
}

// candidate returns the answers of version v logged since the last call
// (lines of other versions are skipped, and a partial last line is left
// for the next call).
func (g *gatewayLog) candidate(v int) ([]access, error) {
	f, err := os.Open(g.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(g.off, io.SeekStart); err != nil {
		return nil, err
	}
	want := []byte(fmt.Sprintf(`"version":%d,`, v))
	msg := []byte(`"msg":"inference request"`)
	var out []access
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // a partial line waits for the next call
		}
		if err != nil {
			return out, err
		}
		g.off += int64(len(line))
		if !bytes.Contains(line, msg) || !bytes.Contains(line, want) {
			continue
		}
		var rec struct {
			Time    time.Time `json:"time"`
			Status  int       `json:"status"`
			Version int       `json:"version"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return out, fmt.Errorf("%s: %w: %s", g.path, err, line)
		}
		if rec.Version == v {
			out = append(out, access{at: rec.Time, status: rec.Status})
		}
	}
}
