package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
)

// hookRequest is one request a test receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookReceiver is a real HTTP server on loopback answering status to
// every request and handing each one to the test.
func hookReceiver(t *testing.T, status int) (*httptest.Server, chan hookRequest) {
	t.Helper()
	got := make(chan hookRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hookRequest{header: r.Header.Clone(), body: b}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// TestWebhooks: an admin subscribes a receiver, pings it with `webhook
// test` (the path every event takes: outbox, dispatcher, egress policy),
// and the receiver verifies the signature as docs/webhooks.md says, with
// nothing but the secret and the standard library. A receiver that fails
// shows in the deliveries with its answer and the next attempt.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	admin := srv.admin()
	good, goodGot := hookReceiver(t, http.StatusOK)
	bad, _ := hookReceiver(t, http.StatusInternalServerError)

	var hook api.WebhookResponse
	admin.json(&hook, "webhook", "add", good.URL+"/hooks/slipway", "--event", "promotion.approved", "--event", "promotion.rejected")
	if !strings.HasPrefix(hook.ID, "wh_") || !strings.HasPrefix(hook.Secret, "whsec_") || hook.URL != good.URL+"/hooks/slipway" ||
		strings.Join(hook.Events, ",") != "promotion.approved,promotion.rejected" || hook.CreatedBy != "admin" {
		t.Fatalf("webhook add -o json: %+v", hook)
	}
	// In table mode the generated secret is alone on stdout.
	r := admin.run("webhook", "add", good.URL+"/all", "--event", "promotion.*,*")
	if secret := strings.TrimSpace(r.stdout); r.code != 0 || !strings.HasPrefix(secret, "whsec_") || strings.Contains(secret, "\n") ||
		!strings.Contains(r.stderr, "created for *, promotion.*; its signing secret, shown this once") {
		t.Fatalf("webhook add:\n%s", r)
	}

	// The ping: delivered, signed, a CloudEvent.
	var d domain.Delivery
	admin.json(&d, "webhook", "test", hook.ID)
	if d.WebhookID != hook.ID || d.EventType != "webhook.ping" || d.Status != domain.DeliveryDelivered || d.Attempts != 1 || d.LastStatusCode != 200 {
		t.Fatalf("webhook test: %+v", d)
	}
	var req hookRequest
	select {
	case req = <-goodGot:
	default:
		t.Fatal("the delivery is recorded as delivered but the receiver got nothing")
	}
	ts := req.header.Get("X-Slipway-Timestamp")
	mac := hmac.New(sha256.New, []byte(hook.Secret))
	mac.Write([]byte(ts + "." + string(req.body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(req.header.Get("X-Slipway-Signature")), []byte(want)) {
		t.Errorf("signature %q, want %q", req.header.Get("X-Slipway-Signature"), want)
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		t.Errorf("timestamp header %q is not a current Unix time", ts)
	}
	if req.header.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" || req.header.Get("X-Slipway-Event") != "webhook.ping" ||
		req.header.Get("X-Slipway-Delivery") != strconv.FormatInt(d.ID, 10) {
		t.Errorf("headers: %v", req.header)
	}
	var ce struct {
		SpecVersion     string `json:"specversion"`
		ID              string `json:"id"`
		Source          string `json:"source"`
		Type            string `json:"type"`
		Subject         string `json:"subject"`
		Time            string `json:"time"`
		DataContentType string `json:"datacontenttype"`
		Data            struct {
			Webhook string   `json:"webhook"`
			Events  []string `json:"events"`
			SentBy  string   `json:"sent_by"`
		} `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(req.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ce); err != nil {
		t.Fatalf("body is not the CloudEvent expected: %v\n%s", err, req.body)
	}
	if _, err := time.Parse(time.RFC3339, ce.Time); err != nil || ce.SpecVersion != "1.0" || ce.ID != d.EventID ||
		!strings.HasPrefix(ce.Source, "slipway://") || ce.Type != "dev.slipway.webhook.ping" || ce.Subject != "webhook/"+hook.ID ||
		ce.DataContentType != "application/json" || ce.Data.Webhook != hook.ID || ce.Data.SentBy != "admin" {
		t.Errorf("CloudEvent: %+v (%v)", ce, err)
	}

	// A receiver answering 500: the secret comes from a file, the ping
	// fails naming the answer and stays queued for a retry.
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var failing api.WebhookResponse
	admin.json(&failing, "webhook", "add", bad.URL, "--event", "*", "--secret-file", secretFile)
	if failing.Secret != "0123456789abcdef-from-a-file" {
		t.Fatalf("--secret-file: secret %q", failing.Secret)
	}
	r = admin.fail([]string{"webhook", "test", failing.ID}, "not delivered yet", "HTTP 500 Internal Server Error", "will be retried")
	if !strings.Contains(r.stdout, "pending") {
		t.Errorf("webhook test of a failing receiver printed:\n%s", r)
	}
	var l api.List[domain.Delivery]
	admin.json(&l, "webhook", "deliveries", failing.ID)
	if len(l.Items) != 1 || l.Items[0].Status != domain.DeliveryPending || l.Items[0].Attempts != 1 || l.Items[0].LastStatusCode != 500 ||
		l.Items[0].NextAttemptAt.IsZero() || !strings.HasPrefix(l.Items[0].LastError, "HTTP 500") {
		t.Fatalf("deliveries of the failing webhook: %+v", l.Items)
	}
	admin.json(&l, "webhook", "deliveries", "--status", "delivered")
	if len(l.Items) != 1 || l.Items[0].ID != d.ID {
		t.Errorf("delivered deliveries: %+v", l.Items)
	}
	if out := admin.ok("webhook", "deliveries"); !strings.Contains(out, "NEXT ATTEMPT") || !strings.Contains(out, "HTTP 500") {
		t.Errorf("deliveries table:\n%s", out)
	}

	// Bad input, refused with a reason and without a change.
	admin.fail([]string{"webhook", "add", "ftp://hooks.example/x", "--event", "*"}, "only http and https")
	admin.fail([]string{"webhook", "add", "http://169.254.169.254/latest", "--event", "*"}, "metadata")
	admin.fail([]string{"webhook", "add", "https://user:pw@hooks.example/", "--event", "*"}, "user name or password")
	admin.fail([]string{"webhook", "add", good.URL, "--event", "promotion.aproved"}, "promotion.approved", "promotion.*")
	admin.fail([]string{"webhook", "add", good.URL}, `"event" not set`)
	admin.fail([]string{"webhook", "test", "wh_0000000000000000"}, "not found")
	admin.fail([]string{"webhook", "remove", "nope"}, "wh_ and 16 hex digits")
	admin.fail([]string{"webhook", "deliveries", "--status", "lost"}, "pending, delivered or failed")
	var viewer api.TokenResponse
	admin.json(&viewer, "token", "create", "--name", "watcher", "--role", "viewer")
	srv.client(viewer.Secret).fail([]string{"webhook", "list"}, "needs admin")

	// List shows no secret; remove takes the deliveries along.
	out := admin.ok("webhook", "list", "-o", "json")
	if strings.Contains(out, "whsec_") || strings.Contains(out, "from-a-file") {
		t.Errorf("webhook list shows a secret:\n%s", out)
	}
	var removed domain.Webhook
	admin.json(&removed, "webhook", "remove", failing.ID)
	if removed.ID != failing.ID {
		t.Errorf("webhook remove: %+v", removed)
	}
	admin.fail([]string{"webhook", "deliveries", failing.ID}, "not found")
	var hooks api.List[domain.Webhook]
	admin.json(&hooks, "webhook", "list")
	if len(hooks.Items) != 2 {
		t.Errorf("webhooks after remove: %+v", hooks.Items)
	}

	// Every change is audited, the chain verifies, and the log keeps no
	// secret.
	var entries api.List[audit.Entry]
	admin.json(&entries, "audit", "list", "--subject", "webhook/"+failing.ID)
	var actions []string
	for _, e := range entries.Items {
		actions = append(actions, e.Action)
		if doc := string(e.Before) + string(e.After); strings.Contains(doc, "from-a-file") {
			t.Errorf("audit entry %s holds the secret: %s", e.Action, doc)
		}
	}
	if strings.Join(actions, ",") != "webhook.create,webhook.test,webhook.delete" {
		t.Errorf("audit of the failing webhook: %v", actions)
	}
	admin.ok("audit", "verify")
}
