package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// gatewayMaxBody is the gateway's default request body cap.
const gatewayMaxBody = 8 << 20

// TestGatewayBadInput sends the gateway what it must refuse, each with
// the Open Inference Protocol's error body and a message that says what
// is wrong: malformed and mis-shaped requests, unknown models, versions
// and environments, a body over the cap, an upstream that hangs and one
// that answers garbage; and a push of a url at a cloud metadata address.
// The gateway keeps serving throughout.
func TestGatewayBadInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")
	g := srv.gatewayClient(t)
	good := inferBody(t, loadParity(t, "v1.json").Rows[:3])
	const infer = "/v2/models/cancer/infer"

	tensor := func(shape, datatype, data string) []byte {
		return []byte(`{"inputs":[{"name":"input-0","shape":` + shape + `,"datatype":"` + datatype + `","data":` + data + `}]}`)
	}
	row := strings.TrimSuffix(strings.Repeat("1.5,", 30), ",")
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		header map[string]string
		status int
		wants  []string
	}{
		{"malformed body", http.MethodPost, infer, []byte(`{"inputs": [`), nil, 400, []string{"not valid JSON"}},
		{"not an object", http.MethodPost, infer, []byte(`[1, 2, 3]`), nil, 400, []string{"not valid JSON"}},
		{"unknown field", http.MethodPost, infer, []byte(`{"inputs": [], "input": []}`), nil, 400, []string{`"input"`}},
		{"no inputs", http.MethodPost, infer, []byte(`{"inputs": []}`), nil, 400, []string{"no inputs"}},
		{"wrong feature count", http.MethodPost, infer, tensor("[1,3]", "FP64", "[[1,2,3]]"), nil, 400, []string{"[1 3]", "[rows, 30]"}},
		{"data shorter than the shape", http.MethodPost, infer, tensor("[2,30]", "FP64", "["+row+"]"), nil, 400, []string{"30 elements", "needs 60"}},
		{"unsupported datatype", http.MethodPost, infer, tensor("[1,30]", "BYTES", "["+row+"]"), nil, 400, []string{`"BYTES"`}},
		{"missing value in an integer tensor", http.MethodPost, infer, tensor("[1,30]", "INT32", "[null"+strings.Repeat(",1", 29)+"]"), nil, 400, []string{"null", "INT32"}},
		{"fraction in an integer tensor", http.MethodPost, infer, tensor("[1,30]", "INT64", "[1.5"+strings.Repeat(",1", 29)+"]"), nil, 400, []string{"1.5", "not an integer"}},
		{"text where a number goes", http.MethodPost, infer, tensor("[1,30]", "FP64", `["NaN"`+strings.Repeat(",1", 29)+"]"), nil, 400, []string{"input-0"}},
		{"unknown model", http.MethodPost, "/v2/models/nope/infer", good, nil, 404, []string{`model "nope" is not served in environment "production"`}},
		{"unknown model metadata", http.MethodGet, "/v2/models/nope", nil, nil, 404, []string{`"nope"`}},
		{"version not a number", http.MethodPost, "/v2/models/cancer/versions/latest/infer", good, nil, 400, []string{`"latest" is not a version number`}},
		{"environment not deployed", http.MethodPost, infer, good, map[string]string{"X-Slipway-Environment": "staging"}, 404, []string{`environment "staging"`}},
		{"invalid environment", http.MethodPost, infer, good, map[string]string{"X-Slipway-Environment": "Prod Env"}, 400, []string{"X-Slipway-Environment"}},
		{"wrong method", http.MethodGet, infer, nil, nil, 405, []string{"POST"}},
		{"no such endpoint", http.MethodPost, "/v2/models/cancer/predict", good, nil, 404, []string{"/v2/models/{name}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := g.send(t.Context(), tc.method, tc.path, tc.body, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			msg := oipErrorOf(t, r, tc.status)
			for _, w := range tc.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("%s %s: message %q does not mention %q", tc.method, tc.path, msg, w)
				}
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Errorf("%s %s: no X-Request-ID on the answer", tc.method, tc.path)
			}
		})
	}

	t.Run("body over the cap", func(t *testing.T) {
		// Raw TCP: the gateway answers from the Content-Length alone, and
		// a client still writing the body would race the answer.
		r := rawPost(t, srv.gateway, infer, gatewayMaxBody+1)
		msg := oipErrorOf(t, r, http.StatusRequestEntityTooLarge)
		if !strings.Contains(msg, fmt.Sprint(gatewayMaxBody)) {
			t.Errorf("413 message %q does not name the limit", msg)
		}
		// Counted once the answer has ended, maybe after the client read it.
		poll(t, 30*time.Second, "the 413 to be counted", func() (bool, string) {
			prom := getText(t, "http://"+srv.addr+"/metrics", "")
			got := promSum(prom, "slipway_gateway_unrouted_requests_total", map[string]string{"code": "413"})
			if got > 1 {
				t.Fatalf("slipway_gateway_unrouted_requests_total{code=\"413\"} = %v, want 1", got)
			}
			return got == 1, fmt.Sprintf("slipway_gateway_unrouted_requests_total{code=\"413\"} = %v", got)
		})
	})

	t.Run("upstream hangs", func(t *testing.T) {
		hang := oipUpstream(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		c := c.in(t)
		c.ok("model", "create", "slow")
		c.ok("version", "push", "slow", "--format", "external", "--set", "url="+hang.URL, "--set", "protocol=oip-v2", "--set", "timeout=1s")
		c.ok("deploy", "slow", "1")
		r := g.do(http.MethodPost, "/v2/models/slow/infer", good, map[string]string{"X-Request-ID": "e2e-hang-1"})
		msg := oipErrorOf(t, r, http.StatusGatewayTimeout)
		if !strings.Contains(msg, "(request id e2e-hang-1)") || r.header.Get("X-Request-ID") != "e2e-hang-1" || r.header.Get("X-Slipway-Version") != "1" {
			t.Errorf("504 answer: %s, headers %v", r, r.header)
		}
	})

	t.Run("upstream answers garbage", func(t *testing.T) {
		junk := oipUpstream(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer conn.Close()
			_, _ = buf.WriteString("SSH-2.0-OpenSSH_9.2 not HTTP at all\r\n\x00\x01\x02\r\n\r\n")
			_ = buf.Flush()
		})
		c := c.in(t)
		c.ok("model", "create", "junk")
		c.ok("version", "push", "junk", "--format", "external", "--set", "url="+junk.URL, "--set", "protocol=oip-v2")
		c.ok("deploy", "junk", "1")
		r := g.do(http.MethodPost, "/v2/models/junk/infer", good, map[string]string{"X-Request-ID": "e2e-junk-1"})
		msg := oipErrorOf(t, r, http.StatusBadGateway)
		if !strings.Contains(msg, "(request id e2e-junk-1)") || !strings.Contains(msg, `model "junk"`) {
			t.Errorf("502 message: %q", msg)
		}
	})

	t.Run("url at a metadata address", func(t *testing.T) {
		c := c.in(t)
		c.ok("model", "create", "sneaky")
		for _, u := range []string{"http://169.254.169.254/", "http://169.254.169.254:80/latest/meta-data/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/"} {
			c.fail([]string{"version", "push", "sneaky", "--format", "external", "--set", "url=" + u, "--set", "protocol=oip-v2"}, "metadata")
			c.fail([]string{"version", "push", "sneaky", "--format", "openai", "--set", "url=" + u}, "metadata")
		}
		var vs api.List[domain.Version]
		c.json(&vs, "version", "list", "sneaky")
		if len(vs.Items) != 0 {
			t.Fatalf("a refused push stored a version: %+v", vs.Items)
		}
	})

	// Nothing above broke the gateway.
	if r := g.do(http.MethodPost, infer, good, nil); r.status != http.StatusOK {
		t.Fatalf("after the bad input: %s", r)
	}
}

// oipUpstream starts an Open Inference Protocol server that is healthy but
// answers every other request with infer; release is closed when the test
// ends, before the server is shut down.
func oipUpstream(t *testing.T, infer func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *httptest.Server {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/health/ready" {
			writeJSONBody(w, map[string]bool{"ready": true})
			return
		}
		infer(w, r, release)
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	return s
}

// rawPost sends the headers of a POST whose Content-Length says size and
// no body, and reads the answer.
func rawPost(t *testing.T, addr, path string, size int) reply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a safety net
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, addr, size); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}
