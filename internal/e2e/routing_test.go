package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// TestRoutingPolicy serves two versions of the breast-cancer model 50/50,
// sets a sticky key and a tester rule with the CLI, and checks through
// the real gateway that each user keeps one version, that the tester
// header reaches the rule's version whoever the user is, that the policy
// shows in `deployment get` and `routing get` and is audited; then what
// traffic set and deploy do to it, and that a bad policy changes nothing.
func TestRoutingPolicy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	c := srv.admin()
	c.ok("model", "create", "cancer")
	c.ok("version", "push", "cancer", example(t, "v1.json"), "--format", "xgboost-json")
	c.ok("version", "push", "cancer", example(t, "v3.json"), "--format", "xgboost-json")
	c.ok("deploy", "cancer", "1", "--env", "production")
	c.ok("traffic", "set", "cancer", "1=50", "2=50", "--env", "production")

	out := c.ok("routing", "set", "cancer", "--env", "production", "--sticky", "header:X-User-ID",
		"--rule", "header:X-Tester=yes -> 2", "--expected-revision", "2")
	assertLines(t, out, "cancer production 3 rule 1 header:X-Tester=yes -> 2", "cancer production 3 sticky header:X-User-ID")

	g := srv.gatewayClient(t)
	body := inferBody(t, loadParity(t, "v1.json").Rows[:1])
	infer := func(header map[string]string) string {
		t.Helper()
		r := g.do(http.MethodPost, "/v2/models/cancer/infer", body, header)
		if r.status != http.StatusOK {
			t.Fatalf("infer with %v: %s", header, r)
		}
		return r.header.Get("X-Slipway-Version")
	}
	users := map[string]string{} // user → version
	perVersion := map[string]int{}
	for u := range 24 {
		id := fmt.Sprintf("user-%d", u)
		users[id] = infer(map[string]string{"X-User-ID": id})
		perVersion[users[id]]++
	}
	if perVersion["1"] == 0 || perVersion["2"] == 0 {
		t.Fatalf("24 users at 50/50 all on one version: %v", perVersion)
	}
	for range 4 {
		for id, v := range users {
			if got := infer(map[string]string{"X-User-ID": id}); got != v {
				t.Fatalf("%s got version %s, then %s", id, v, got)
			}
		}
	}
	// The rule comes first: a tester on version 1 by their bucket is
	// answered by version 2.
	for id, v := range users {
		if got := infer(map[string]string{"X-User-ID": id, "X-Tester": "yes"}); got != "2" {
			t.Fatalf("tester %s (version %s by bucket) answered by version %s, want the rule's 2", id, v, got)
		}
	}
	if !srv.log.waitFor(`"routed_by":"rule"`, `"routed_by":"sticky"`) {
		t.Errorf("the access log does not say how requests were routed:\n%s", srv.log.tail(5))
	}

	// deployment get and routing get show the policy.
	var st deployment.Status
	c.json(&st, "deployment", "get", "cancer", "--env", "production")
	if st.Revision != 3 || st.Routing.Sticky == nil || st.Routing.Sticky.Header != "X-User-ID" ||
		len(st.Routing.Rules) != 1 || st.Routing.Rules[0].String() != "header:X-Tester=yes -> 2" {
		t.Fatalf("deployment get: %+v", st)
	}
	if raw := c.ok("routing", "get", "cancer", "--env", "production", "-o", "json"); !strings.Contains(raw, `"rules": [
      "header:X-Tester=yes -> 2"
    ]`) {
		t.Errorf("routing get -o json:\n%s", raw)
	}
	if y := c.ok("routing", "get", "cancer", "--env", "production", "-o", "yaml"); !strings.Contains(y, "- header:X-Tester=yes -> 2") {
		t.Errorf("routing get -o yaml:\n%s", y)
	}

	// The change is in the audit log, with the policy before and after.
	type policyAt struct {
		Revision int64          `json:"revision"`
		Routing  domain.Routing `json:"routing"`
	}
	var audit struct {
		Items []struct {
			Action, Actor string
			Before        *policyAt
			After         policyAt
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.ok("audit", "list", "--subject", "model/cancer/deployment/production", "-o", "json")), &audit); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range audit.Items {
		if e.Action == "deployment.set" && e.After.Revision == 3 {
			found = e.Actor == "admin" && e.Before != nil && e.Before.Routing.IsZero() &&
				e.After.Routing.Sticky != nil && len(e.After.Routing.Rules) == 1 && e.After.Routing.Rules[0].String() == "header:X-Tester=yes -> 2"
		}
	}
	if !found {
		t.Errorf("no audit entry of the routing change:\n%+v", audit.Items)
	}
	c.ok("audit", "verify")

	// A bad policy is refused with the reason, and nothing changes.
	c.fail([]string{"routing", "set", "cancer", "--env", "production", "--rule", "header:X-Tester=yes -> 9"}, "version 9", "does not serve")
	c.fail([]string{"routing", "set", "cancer", "--env", "production", "--sticky", "cookie:id"}, "--sticky", "header: or json:")
	c.fail([]string{"routing", "set", "cancer", "--env", "production"}, "no policy given", "routing clear")
	c.fail([]string{"routing", "set", "cancer", "--env", "production", "--sticky", "header:X-User-ID", "--expected-revision", "2"}, "revision 3")
	// A split that would orphan the rule is refused too.
	c.fail([]string{"traffic", "set", "cancer", "1=100", "--env", "production"}, "change the routing first")
	st = deployment.Status{}
	c.json(&st, "deployment", "get", "cancer", "--env", "production")
	if st.Revision != 3 || len(st.Routing.Rules) != 1 || len(st.Versions) != 2 {
		t.Fatalf("after refusals: %+v", st)
	}

	// Moving the weights keeps the policy; users move only from 1 to 2.
	c.ok("traffic", "set", "cancer", "1=20", "2=80", "--env", "production")
	for id, v := range users {
		if got := infer(map[string]string{"X-User-ID": id}); got != v && !(v == "1" && got == "2") {
			t.Errorf("%s moved from version %s to %s when version 2's weight grew", id, v, got)
		}
	}
	// Deploy drops the rules (they name versions) and keeps the key.
	c.ok("deploy", "cancer", "1", "--env", "production")
	var view struct {
		Model       string         `json:"model"`
		Environment string         `json:"environment"`
		Revision    int64          `json:"revision"`
		Routing     domain.Routing `json:"routing"`
	}
	c.json(&view, "routing", "get", "cancer", "--env", "production")
	if view.Revision != 5 || len(view.Routing.Rules) != 0 || view.Routing.Sticky == nil {
		t.Fatalf("after deploy: %+v", view)
	}
	if got := infer(map[string]string{"X-Tester": "yes"}); got != "1" {
		t.Errorf("tester after deploy answered by version %s", got)
	}
	c.ok("routing", "clear", "cancer", "--env", "production")
	view.Routing = domain.Routing{}
	c.json(&view, "routing", "get", "cancer", "--env", "production")
	if view.Revision != 6 || !view.Routing.IsZero() {
		t.Fatalf("after clear: %+v", view)
	}
	assertLines(t, c.ok("routing", "get", "cancer", "--env", "production"), "cancer production 6 split random draw by the weights")
}
