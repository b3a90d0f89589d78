package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
)

// TestTokens checks roles and revocation as a person at a terminal meets
// them: the secret printed once, reads allowed, writes refused naming the
// role, a revoked token refused naming the revocation.
func TestTokens(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	admin := srv.admin()
	admin.ok("model", "create", "fraud")

	// The secret goes to stdout alone, the notice to stderr.
	r := admin.run("token", "create", "--name", "reader", "--role", "viewer")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, "slw_") || strings.Contains(secret, "\n") ||
		!strings.Contains(r.stderr, `token "reader" (role viewer) created`) {
		t.Fatalf("token create:\n%s", r)
	}
	reader := srv.client(secret)
	var models api.List[domain.Model]
	reader.json(&models, "model", "list")
	if len(models.Items) != 1 || models.Items[0].Name != "fraud" {
		t.Fatalf("viewer model list: %+v", models)
	}
	reader.ok("version", "list", "fraud")
	reader.ok("audit", "verify")
	reader.fail([]string{"model", "create", "churn"}, "role viewer", "needs author")
	reader.fail([]string{"token", "list"}, "role viewer", "needs admin")
	reader.fail([]string{"token", "create", "--name", "escalate", "--role", "admin"}, "role viewer")
	admin.fail([]string{"model", "get", "churn"}, "not found")

	// Duties are separate: an author pushes but may not move aliases.
	var author api.TokenResponse
	admin.json(&author, "token", "create", "--name", "ci", "--role", "author")
	if author.Name != "ci" || author.Role != domain.RoleAuthor || author.CreatedBy != "admin" || !strings.HasPrefix(author.Secret, "slw_") {
		t.Fatalf("token create -o json: %+v", author)
	}
	ci := srv.client(author.Secret)
	ci.ok("model", "create", "churn")
	ci.fail([]string{"alias", "set", "churn", "champion", "1"}, "role author", "needs deployer")

	// Revocation.
	var revoked domain.Token
	admin.json(&revoked, "token", "revoke", "reader")
	if revoked.Name != "reader" || revoked.RevokedAt == nil {
		t.Fatalf("token revoke: %+v", revoked)
	}
	reader.fail([]string{"model", "list"}, "revoked")
	admin.fail([]string{"token", "revoke", "reader"}, "already revoked")
	var tokens api.List[domain.Token]
	admin.json(&tokens, "token", "list")
	var names []string
	for _, tk := range tokens.Items {
		names = append(names, tk.Name)
		if (tk.RevokedAt != nil) != (tk.Name == "reader") {
			t.Errorf("token %s: revoked at %v", tk.Name, tk.RevokedAt)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"admin", "ci", "reader"}) {
		t.Fatalf("token list: %v", names)
	}
	table := admin.ok("token", "list")
	assertLines(t, table, "NAME ROLE CREATED BY CREATED REVOKED", "admin admin system", "ci author admin")
	for l := range strings.Lines(table) {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "reader" && len(f) != 5 {
			t.Fatalf("token list shows reader without a revocation time: %q", l)
		}
	}
	if strings.Contains(table, "slw_") || strings.Contains(admin.ok("token", "list", "-o", "json"), "slw_") {
		t.Fatalf("token list shows a secret:\n%s", table)
	}

	// No token, or one that was never minted.
	none := srv.client("")
	none.fail([]string{"model", "list"}, "no API token", "SLIPWAY_TOKEN")
	srv.client("not-a-token").fail([]string{"model", "list"}, "token is malformed")
	forged := secret[:len(secret)-4] + "AAAA"
	if forged == secret {
		forged = secret[:len(secret)-4] + "BBBB"
	}
	srv.client(forged).fail([]string{"model", "list"}, "unauthenticated")
}
