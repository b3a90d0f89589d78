package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

func deploymentTable(sts ...deployment.Status) func() table {
	return func() table {
		t := table{header: []string{"MODEL", "ENVIRONMENT", "VERSION", "WEIGHT", "STABLE", "HEALTH", "REVISION", "UPDATED BY", "UPDATED"}}
		for _, st := range sts {
			health := map[int]deployment.VersionHealth{}
			for _, h := range st.Health {
				health[h.Version] = h
			}
			for _, v := range st.Versions {
				h := "healthy"
				if hv, ok := health[v.Version]; ok && !hv.Healthy {
					h = "unhealthy: " + oneLine(hv.Error)
				}
				stable := ""
				if v.Version == st.StableVersion() {
					stable = "yes"
				}
				t.rows = append(t.rows, []string{st.Model, st.Environment, strconv.Itoa(v.Version), strconv.Itoa(v.Weight) + "%",
					stable, h, strconv.FormatInt(st.Revision, 10), st.UpdatedBy, ago(st.UpdatedAt)})
			}
		}
		addFaultColumn(&t, sts) // fault.go
		return t
	}
}

func plainTable(d domain.Deployment) func() table {
	return deploymentTable(deployment.Status{Deployment: d})
}

func optionalRevision(s string) (*int64, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("--expect-revision %q must be a revision number (0: no deployment yet)", s)
	}
	return &n, nil
}

func newDeployCmd(g *globals) *cobra.Command {
	var env, expect string
	cmd := &cobra.Command{
		Use:   "deploy MODEL VERSION|@alias --env ENV",
		Short: "Serve one version at 100 % of an environment's traffic",
		Long: `Serve one version at 100 % of an environment's traffic. The version's
runtime is started first; if it cannot start, the command fails with the
runtime's error and the environment keeps serving what it served. The
deployed version becomes the stable version, the one the gateway falls
back to when another version of a later split fails.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := optionalRevision(expect)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.Deploy(cmd.Context(), args[0], args[1], env, exp)
			if err != nil {
				return err
			}
			return g.emit(d, plainTable(d))
		},
	}
	cmd.Flags().StringVar(&env, "env", "production", "environment (dev, staging, production)")
	cmd.Flags().StringVar(&expect, "expect-revision", "", "only change the deployment if it is at this revision")
	g.addOutput(cmd)
	return cmd
}

func newTrafficCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "traffic", Short: "Split an environment's traffic between versions"}
	var env, expect string
	var stable int
	set := &cobra.Command{
		Use:   "set MODEL VERSION=WEIGHT... --env ENV [--stable N]",
		Short: "Set the traffic weights (percent, summing to 100), e.g. 3=90 4=10",
		Long: `Set the traffic weights (percent, summing to 100), e.g. 3=90 4=10.

The stable version is where the gateway sends a version's traffic while
that version's circuit breaker is open, or after its call failed. --stable N
names it (a version in the split); without it the current stable version
stays while it is in the split, else the highest-weight version becomes
stable. slipway deploy makes the deployed version stable.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			weights := map[int]int{}
			for _, a := range args[1:] {
				vs, ws, ok := strings.Cut(a, "=")
				v, err1 := strconv.Atoi(vs)
				w, err2 := strconv.Atoi(ws)
				if !ok || err1 != nil || err2 != nil {
					return fmt.Errorf("%q must be VERSION=WEIGHT, e.g. 3=90", a)
				}
				if _, dup := weights[v]; dup {
					return fmt.Errorf("version %d is given twice", v)
				}
				weights[v] = w
			}
			exp, err := optionalRevision(expect)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if stable < 0 {
				return fmt.Errorf("--stable %d must be a version number", stable)
			}
			d, err := c.SetTrafficStable(cmd.Context(), args[0], env, weights, stable, exp)
			if err != nil {
				return err
			}
			return g.emit(d, plainTable(d))
		},
	}
	set.Flags().StringVar(&env, "env", "production", "environment (dev, staging, production)")
	set.Flags().StringVar(&expect, "expect-revision", "", "only change the deployment if it is at this revision")
	set.Flags().IntVar(&stable, "stable", 0, "the version traffic falls back to (default: keep the current one, else the highest weight)")
	g.addOutput(set)
	cmd.AddCommand(set)
	return cmd
}

func newDeploymentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "deployment", Short: "Show what each environment serves, with health"}
	var env string
	get := &cobra.Command{
		Use:   "get MODEL --env ENV",
		Short: "Show one environment's deployment of a model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.GetDeployment(cmd.Context(), args[0], env)
			if err != nil {
				return err
			}
			return g.emit(st, deploymentTable(st))
		},
	}
	get.Flags().StringVar(&env, "env", "production", "environment")
	g.addOutput(get)
	var p apiclient.Page
	var model, listEnv string
	list := &cobra.Command{
		Use:   "list",
		Short: "List deployments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListDeployments(cmd.Context(), model, listEnv, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, deploymentTable(l.Items...))
		},
	}
	list.Flags().StringVar(&model, "model", "", "only this model's deployments")
	list.Flags().StringVar(&listEnv, "env", "", "only this environment")
	pageFlags(list, &p)
	g.addOutput(list)
	var price domain.Price
	var priceEnv string
	setPrice := &cobra.Command{
		Use:   "set-price MODEL VERSION --env ENV --prompt P --completion C",
		Short: "Set what a served version's tokens cost (per million), for the gateway's cost metrics",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return fmt.Errorf("version %q must be a version number", args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.SetPrice(cmd.Context(), args[0], priceEnv, n, price)
			if err != nil {
				return err
			}
			return g.emit(d, plainTable(d))
		},
	}
	setPrice.Flags().StringVar(&priceEnv, "env", "production", "environment")
	setPrice.Flags().Float64Var(&price.PerMTokPrompt, "prompt", 0, "price per million prompt tokens")
	setPrice.Flags().Float64Var(&price.PerMTokCompletion, "completion", 0, "price per million completion tokens")
	g.addOutput(setPrice)
	cmd.AddCommand(get, list, setPrice, newSetFaultCmd(g), newClearFaultCmd(g))
	return cmd
}
