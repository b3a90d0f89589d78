package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/notify"
)

// webhookHarness is the API with the webhook service and a dispatcher
// driven by hand (RunDue), so no test waits on a poll.
func webhookHarness(t *testing.T) (*harness, *notify.Dispatcher) {
	t.Helper()
	var disp *notify.Dispatcher
	h := newHarness(t, func(c *api.Config) {
		var err error
		disp, err = notify.NewDispatcher(notify.DispatcherConfig{Store: c.Store, Source: "slipway://api-test", Log: c.Log})
		if err != nil {
			t.Fatal(err)
		}
		c.Webhooks = notify.NewService(notify.ServiceConfig{Store: c.Store, Dispatcher: disp})
	})
	return h, disp
}

func TestWebhookEndpoints(t *testing.T) {
	h, disp := webhookHarness(t)
	got := make(chan *http.Request, 10)
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, b)
		got <- r
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)

	// Create: the secret is in this answer and no other.
	r := h.mustCall("POST", "/api/v1/webhooks", h.admin, api.WebhookRequest{URL: rcv.URL + "/hook", Events: []string{"promotion.*"}}, http.StatusCreated)
	var created api.WebhookResponse
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") || created.URL != rcv.URL+"/hook" || created.CreatedBy != "admin" ||
		r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %s", r.body)
	}
	id := created.ID
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id} {
		r := h.mustCall("GET", path, h.admin, nil, http.StatusOK)
		if strings.Contains(string(r.body), created.Secret) || !strings.Contains(string(r.body), id) {
			t.Errorf("GET %s: %s", path, r.body)
		}
	}

	// Test: a ping through the outbox, followed to its delivery.
	r = h.mustCall("POST", "/api/v1/webhooks/"+id+"/test", h.admin, nil, http.StatusAccepted)
	var d domain.Delivery
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Status != domain.DeliveryPending || d.EventType != notify.TypePing || r.header.Get("Location") != "/api/v1/webhook-deliveries/"+strconv.FormatInt(d.ID, 10) {
		t.Fatalf("test: %s (Location %q)", r.body, r.header.Get("Location"))
	}
	if n, err := disp.RunDue(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunDue: %d, %v", n, err)
	}
	req := <-got
	if err := notify.Verify(created.Secret, req.Header.Get(notify.HeaderSignature), req.Header.Get(notify.HeaderTimestamp), bodies[0], time.Now(), 5*time.Minute); err != nil {
		t.Errorf("the ping's signature: %v", err)
	}
	r = h.mustCall("GET", r.header.Get("Location"), h.admin, nil, http.StatusOK)
	if err := json.Unmarshal(r.body, &d); err != nil || d.Status != domain.DeliveryDelivered || d.LastStatusCode != 204 || d.Attempts != 1 {
		t.Fatalf("delivery after RunDue: %s", r.body)
	}
	for _, path := range []string{"/api/v1/webhooks/" + id + "/deliveries", "/api/v1/webhook-deliveries?status=delivered"} {
		var l api.List[domain.Delivery]
		r := h.mustCall("GET", path, h.admin, nil, http.StatusOK)
		if err := json.Unmarshal(r.body, &l); err != nil || len(l.Items) != 1 || l.Items[0].ID != d.ID {
			t.Errorf("GET %s: %s", path, r.body)
		}
	}
	var l api.List[domain.Delivery]
	r = h.mustCall("GET", "/api/v1/webhook-deliveries?status=failed", h.admin, nil, http.StatusOK)
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Items) != 0 {
		t.Errorf("failed deliveries: %s", r.body)
	}

	// Bad input, with problems a person can act on.
	viewer := h.token("watcher", domain.RoleViewer)
	for _, tc := range []struct {
		method, path, token string
		body                any
		status              int
		detail              string
	}{
		{"POST", "/api/v1/webhooks", h.admin, api.WebhookRequest{URL: "ftp://x/", Events: []string{"*"}}, 400, "only http and https"},
		{"POST", "/api/v1/webhooks", h.admin, api.WebhookRequest{URL: "http://169.254.169.254/", Events: []string{"*"}}, 400, "metadata"},
		{"POST", "/api/v1/webhooks", h.admin, api.WebhookRequest{URL: rcv.URL, Events: []string{"promotion.aproved"}}, 400, "promotion.approved"},
		{"POST", "/api/v1/webhooks", h.admin, api.WebhookRequest{URL: rcv.URL, Events: []string{"*"}, Secret: "short"}, 400, "secret"},
		{"POST", "/api/v1/webhooks", h.admin, `{"url":"http://127.0.0.1/","events":["*"],"extra":1}`, 400, "extra"},
		{"POST", "/api/v1/webhooks", viewer, api.WebhookRequest{URL: rcv.URL, Events: []string{"*"}}, 403, "admin"},
		{"GET", "/api/v1/webhooks", viewer, nil, 403, "admin"},
		{"GET", "/api/v1/webhook-deliveries", viewer, nil, 403, "admin"},
		{"GET", "/api/v1/webhooks/wh_0000000000000000", h.admin, nil, 404, "wh_0000000000000000"},
		{"GET", "/api/v1/webhooks/nope", h.admin, nil, 400, "wh_ and 16 hex digits"},
		{"POST", "/api/v1/webhooks/wh_0000000000000000/test", h.admin, nil, 404, "not found"},
		{"GET", "/api/v1/webhooks/wh_0000000000000000/deliveries", h.admin, nil, 404, "not found"},
		{"GET", "/api/v1/webhook-deliveries?status=lost", h.admin, nil, 400, "pending, delivered or failed"},
		{"GET", "/api/v1/webhook-deliveries/abc", h.admin, nil, 400, "number"},
		{"GET", "/api/v1/webhook-deliveries/99999", h.admin, nil, 404, "99999"},
	} {
		r := h.call(tc.method, tc.path, tc.token, tc.body)
		if r.status != tc.status || !strings.Contains(r.problem.Detail, tc.detail) {
			t.Errorf("%s %s: %d %q, want %d mentioning %q", tc.method, tc.path, r.status, r.problem.Detail, tc.status, tc.detail)
		}
	}

	// Delete takes the deliveries with it.
	h.mustCall("DELETE", "/api/v1/webhooks/"+id, h.admin, nil, http.StatusOK)
	h.mustCall("GET", "/api/v1/webhooks/"+id, h.admin, nil, http.StatusNotFound)
	h.mustCall("GET", "/api/v1/webhook-deliveries/"+strconv.FormatInt(d.ID, 10), h.admin, nil, http.StatusNotFound)
	h.mustCall("DELETE", "/api/v1/webhooks/"+id, h.admin, nil, http.StatusNotFound)
}

// A server built without the webhook service says so instead of failing
// obscurely.
func TestWebhooksUnconfigured(t *testing.T) {
	h := newHarness(t)
	r := h.call("GET", "/api/v1/webhooks", h.admin, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.problem.Detail, "no webhooks") {
		t.Errorf("unconfigured: %d %s", r.status, r.body)
	}
}
