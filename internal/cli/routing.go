package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-ml/slipway/internal/domain"
)

// routingView is what routing get and set print: a deployment's policy
// with enough of the deployment to know which one.
type routingView struct {
	Model       string         `json:"model"`
	Environment string         `json:"environment"`
	Revision    int64          `json:"revision"`
	Routing     domain.Routing `json:"routing"`
}

func viewOf(d domain.Deployment) routingView {
	return routingView{Model: d.Model, Environment: d.Environment, Revision: d.Revision, Routing: d.Routing}
}

// routingTable prints one row per part of the policy, in the order the
// gateway applies them.
func routingTable(v routingView) func() table {
	return func() table {
		t := table{header: []string{"MODEL", "ENVIRONMENT", "REVISION", "POLICY", "SETTING"}}
		row := func(kind, setting string) {
			t.rows = append(t.rows, []string{v.Model, v.Environment, strconv.FormatInt(v.Revision, 10), kind, setting})
		}
		p := v.Routing
		for i, m := range p.Rules {
			row("rule "+strconv.Itoa(i+1), m.String())
		}
		if p.Sticky != nil {
			row("sticky", p.Sticky.String())
		}
		if p.Shadow != nil {
			row("shadow", fmt.Sprintf("version %d gets a copy of %s %% of requests", p.Shadow.Version, strconv.FormatFloat(p.Shadow.Percent, 'f', -1, 64)))
		}
		if l := p.Limits; l != nil {
			var parts []string
			if l.RequestsPerSecond > 0 {
				parts = append(parts, fmt.Sprintf("%s requests/s, burst %d", strconv.FormatFloat(l.RequestsPerSecond, 'f', -1, 64), l.EffectiveBurst()))
			}
			if l.MaxConcurrency > 0 {
				parts = append(parts, fmt.Sprintf("%d in flight per version", l.MaxConcurrency))
			}
			if len(parts) > 0 {
				row("limits", strings.Join(parts, "; "))
			}
		}
		if p.Sticky == nil && len(p.Rules) == 0 {
			row("split", "random draw by the weights")
		}
		return t
	}
}

// routingFlags are the flags of routing set, before parsing.
type routingFlags struct {
	sticky, shadow string
	rules          []string
	rate           float64
	burst, maxConc int
}

// register adds the policy flags of routing set to fs.
func (f *routingFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.sticky, "sticky", "", "sticky key: header:NAME or json:FIELD[.FIELD…]")
	fs.StringArrayVar(&f.rules, "rule", nil, "match rule 'header:NAME[=VALUE|^=PREFIX] -> VERSION' (repeatable; first match wins)")
	fs.StringVar(&f.shadow, "shadow", "", "mirror a share of requests: VERSION=PERCENT, e.g. 3=10")
	fs.Float64Var(&f.rate, "rate", 0, "requests per second over the deployment (0: no limit)")
	fs.IntVar(&f.burst, "burst", 0, "token-bucket size (default one second of requests)")
	fs.IntVar(&f.maxConc, "max-concurrency", 0, "requests one version may have in flight (0: unbounded)")
}

// policy parses the flags into a policy with the domain's parsers, naming
// the flag at fault. Limits are set when any limit flag was given. No
// flag at all is refused: clearing the policy is routing clear's job,
// not a forgotten flag's.
func (f routingFlags) policy(flags *pflag.FlagSet) (domain.Routing, error) {
	var p domain.Routing
	given := false
	for _, name := range []string{"sticky", "rule", "shadow", "rate", "burst", "max-concurrency"} {
		given = given || flags.Changed(name)
	}
	if !given {
		return p, errors.New("no policy given: routing set replaces the whole policy with what its flags say (--sticky, --rule, --shadow, --rate, --burst, --max-concurrency); to remove the policy, use routing clear")
	}
	if f.sticky != "" {
		k, err := domain.ParseStickyKey(f.sticky)
		if err != nil {
			return p, fmt.Errorf("--sticky: %w", err)
		}
		p.Sticky = &k
	}
	for _, s := range f.rules {
		m, err := domain.ParseMatchRule(s)
		if err != nil {
			return p, fmt.Errorf("--rule: %w", err)
		}
		p.Rules = append(p.Rules, m)
	}
	if f.shadow != "" {
		sh, err := domain.ParseShadow(f.shadow)
		if err != nil {
			return p, fmt.Errorf("--shadow: %w", err)
		}
		p.Shadow = &sh
	}
	if math.IsNaN(f.rate) || math.IsInf(f.rate, 0) { // JSON cannot carry them to the server's own check
		return p, fmt.Errorf("--rate %v is not a number of requests per second: %w", f.rate, domain.ErrInvalid)
	}
	if flags.Changed("rate") || flags.Changed("burst") || flags.Changed("max-concurrency") {
		p.Limits = &domain.RouteLimits{RequestsPerSecond: f.rate, Burst: f.burst, MaxConcurrency: f.maxConc}
	}
	return p, nil
}

// acceptExpected takes --expected-revision as another spelling of the
// --expect-revision the other deployment commands use.
func acceptExpected(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "expected-revision" {
		name = "expect-revision"
	}
	return pflag.NormalizedName(name)
}

func newRoutingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routing",
		Short: "Route a deployment's requests beyond the split: sticky keys, match rules, shadow, limits",
		Long: `A deployment's routing policy decides which version answers a request
the path does not pin. The gateway applies it in order: the first match
rule whose header matches sends the request to its version; else a sticky
key present in the request picks the version by the key's hash bucket, so
one caller stays on one version while the weights stay put; else a random
draw by the weights does.

slipway deploy drops the rules and the shadow (they name versions the new
deployment may not serve) and keeps the sticky key and limits; traffic set
keeps the whole policy and refuses a split that would leave a rule or the
shadow pointing at a version it no longer serves.`,
	}
	var env, expect string
	var f routingFlags
	set := &cobra.Command{
		Use:   "set MODEL --env ENV [--sticky header:X-User-ID|json:user] [--rule 'header:X-Tester=yes -> 3']... [--shadow 3=10] [--rate RPS] [--burst N] [--max-concurrency N]",
		Short: "Replace a deployment's whole routing policy",
		Long: `Replace a deployment's whole routing policy: what the flags give is the
new policy, and whatever they leave out is cleared (routing get shows the
current one). The split stays as it is.

  --sticky header:NAME | json:FIELD[.FIELD…]
      the request key that keeps one caller on one version: a header, or
      a field of the JSON body (parameters.user_id for an Open Inference
      Protocol request, user for an OpenAI one). Requests without it take
      the random split.
  --rule 'header:NAME=VALUE -> VERSION'    the header equals VALUE
  --rule 'header:NAME^=PREFIX -> VERSION'  the header starts with PREFIX
  --rule 'header:NAME -> VERSION'          the header is present
      repeatable; the first matching rule wins. The version must be
      served (at weight 0 if it should get no other traffic).
  --shadow VERSION=PERCENT
      mirror PERCENT of requests to VERSION (served at weight 0); its
      answers are compared with the primary's and dropped.
  --rate, --burst, --max-concurrency
      a token-bucket rate over the deployment's requests and the requests
      each version may have in flight.`,
		Example: `  slipway routing set fraud --env production --sticky header:X-User-ID \
      --rule 'header:X-Tester=yes -> 3' --rule 'header:X-Region^=eu- -> 2'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := f.policy(cmd.Flags())
			if err != nil {
				return err
			}
			return setRouting(cmd, g, args[0], env, expect, p)
		},
	}
	set.Flags().StringVar(&env, "env", "production", "environment (dev, staging, production)")
	set.Flags().StringVar(&expect, "expect-revision", "", "only change the deployment if it is at this revision (also --expected-revision)")
	f.register(set.Flags())
	set.Flags().SetNormalizeFunc(acceptExpected)
	g.addOutput(set)

	var getEnv string
	get := &cobra.Command{
		Use:   "get MODEL --env ENV",
		Short: "Show a deployment's routing policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.GetDeployment(cmd.Context(), args[0], getEnv)
			if err != nil {
				return err
			}
			v := viewOf(st.Deployment)
			return g.emit(v, routingTable(v))
		},
	}
	get.Flags().StringVar(&getEnv, "env", "production", "environment")
	g.addOutput(get)

	var clearEnv, clearExpect string
	clearCmd := &cobra.Command{
		Use:   "clear MODEL --env ENV",
		Short: "Remove a deployment's routing policy: requests take the random split",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setRouting(cmd, g, args[0], clearEnv, clearExpect, domain.Routing{})
		},
	}
	clearCmd.Flags().StringVar(&clearEnv, "env", "production", "environment (dev, staging, production)")
	clearCmd.Flags().StringVar(&clearExpect, "expect-revision", "", "only change the deployment if it is at this revision (also --expected-revision)")
	clearCmd.Flags().SetNormalizeFunc(acceptExpected)
	g.addOutput(clearCmd)

	cmd.AddCommand(set, get, clearCmd)
	return cmd
}

func setRouting(cmd *cobra.Command, g *globals, model, env, expect string, p domain.Routing) error {
	exp, err := optionalRevision(expect)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	d, err := c.SetRouting(cmd.Context(), model, env, p, exp)
	if err != nil {
		return err
	}
	v := viewOf(d)
	return g.emit(v, routingTable(v))
}
