package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// traffic is the demo's synthetic clients: workers sending Open
// Inference Protocol requests made from holdout rows through the gateway
// at a fixed total rate, counting what the clients see — answers, errors,
// which version answered (X-Slipway-Version) and which answered for
// another that failed (X-Slipway-Fallback-From).
type traffic struct {
	url    string
	bodies [][]byte
	client *http.Client

	mu        sync.Mutex
	served    int
	errors    int
	byVersion map[int]int
	// touched counts, per version, the requests it answered or failed
	// (a fallback counts for the version that failed); firstBad is when
	// a client first saw a version fail, by its own answer or a fallback.
	touched  map[int]int
	firstBad map[int]time.Time
}

// newTraffic reads the holdout rows (a CSV with a header; the label
// column is left out) into request bodies.
func newTraffic(gateway, model string, holdout []byte) (*traffic, error) {
	rows, err := csv.NewReader(bytes.NewReader(holdout)).ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("the demo's holdout rows do not read: %v", err)
	}
	label := -1
	for i, h := range rows[0] {
		if h == "label" {
			label = i
		}
	}
	t := &traffic{
		url:       "http://" + gateway + "/v2/models/" + model + "/infer",
		client:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		byVersion: map[int]int{}, touched: map[int]int{}, firstBad: map[int]time.Time{},
	}
	for _, row := range rows[1:] {
		vals := make([]string, 0, len(row))
		for i, v := range row {
			if i != label {
				vals = append(vals, v)
			}
		}
		body := fmt.Sprintf(`{"inputs":[{"name":"input-0","datatype":"FP64","shape":[1,%d],"data":[%s]}]}`, len(vals), strings.Join(vals, ","))
		t.bodies = append(t.bodies, []byte(body))
	}
	return t, nil
}

// run sends rate requests a second from workers until ctx ends.
func (t *traffic) run(ctx context.Context, rate, workers int) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	jobs := make(chan []byte, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				t.send(ctx, b)
			}
		}()
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		case <-tick.C:
			select {
			case jobs <- t.bodies[i%len(t.bodies)]:
			default: // the workers are behind: an open-loop client would queue; skip
			}
		}
	}
}

func (t *traffic) send(ctx context.Context, body []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Slipway-Environment", "production")
	resp, err := t.client.Do(req)
	now := time.Now()
	if ctx.Err() != nil {
		return // stopping: not the server's doing
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.served++
	if err != nil {
		t.errors++
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	v, _ := strconv.Atoi(resp.Header.Get("X-Slipway-Version"))
	t.byVersion[v]++
	t.touched[v]++
	bad := 0
	if resp.StatusCode != http.StatusOK {
		t.errors++
		bad = v
	}
	if from, err := strconv.Atoi(resp.Header.Get("X-Slipway-Fallback-From")); err == nil && from != v {
		t.touched[from]++
		bad = from
	}
	if _, seen := t.firstBad[bad]; bad != 0 && !seen {
		t.firstBad[bad] = now
	}
}

// trafficFigures is a reading of the clients' counters.
type trafficFigures struct {
	Served, Errors int
	ByVersion      map[int]int
	Touched        map[int]int
	FirstBad       map[int]time.Time
}

func (t *traffic) figures() trafficFigures {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := trafficFigures{Served: t.served, Errors: t.errors, ByVersion: map[int]int{}, Touched: map[int]int{}, FirstBad: map[int]time.Time{}}
	for k, v := range t.byVersion {
		f.ByVersion[k] = v
	}
	for k, v := range t.touched {
		f.Touched[k] = v
	}
	for k, v := range t.firstBad {
		f.FirstBad[k] = v
	}
	return f
}
