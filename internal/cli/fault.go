package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/domain"
)

// addFaultColumn adds a FAULT column to a deployment table when any of
// its versions carries a fault; tables without faults stay as they were.
func addFaultColumn(t *table, sts []deployment.Status) {
	var faults []string
	found := false
	for _, st := range sts {
		for _, v := range st.Versions {
			f := ""
			if v.Fault != nil {
				f, found = v.Fault.String(), true
			}
			faults = append(faults, f)
		}
	}
	if !found || len(faults) != len(t.rows) {
		return
	}
	t.header = append(t.header, "FAULT")
	for i := range t.rows {
		t.rows[i] = append(t.rows[i], faults[i])
	}
}

const faultHelp = `Fault injection is for chaos tests and demos: the gateway answers a share
of the version's requests with an error status without calling the model,
and/or holds a share of them for a delay first. Injected failures count
like real ones — in the version's metrics, its circuit breaker, retries,
fallback to the stable version and a rollout's analysis — so a canary
with injected aborts is rolled back as a failing one would be. It is
refused in environments the server does not allow (slipway server
--fault-injection-envs, default dev,staging), and audited as
deployment.fault. A version keeps its fault across traffic changes until
slipway deployment clear-fault removes it.`

func newSetFaultCmd(g *globals) *cobra.Command {
	var env, expect string
	var version int
	var f domain.Fault
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "set-fault MODEL --env ENV --version N [--abort-percent P [--abort-status S]] [--delay D --delay-percent P]",
		Short: "Inject failures into a served version's requests (chaos tests, demos)",
		Long: `Inject failures into a served version's requests, replacing any fault it had.

` + faultHelp + `

  slipway deployment set-fault cancer --env staging --version 4 --abort-percent 30 --abort-status 500
  slipway deployment set-fault cancer --env staging --version 4 --delay 50ms --delay-percent 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 1 {
				return fmt.Errorf("--version %d must be a version number", version)
			}
			exp, err := optionalRevision(expect)
			if err != nil {
				return err
			}
			f.Delay = domain.Duration(delay)
			if err := f.Validate(); err != nil {
				return faultFlagError(err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.SetFault(cmd.Context(), args[0], env, version, f, exp)
			if err != nil {
				return err
			}
			return g.emit(d, plainTable(d))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&env, "env", "", "environment (it must allow fault injection)")
	fl.IntVar(&version, "version", 0, "the served version to inject into")
	fl.Float64Var(&f.AbortPercent, "abort-percent", 0, "share of requests answered with --abort-status, from 0.0001 to 100")
	fl.IntVar(&f.AbortStatus, "abort-status", 0, "status of aborted requests, 400 to 599 (default 503)")
	fl.DurationVar(&delay, "delay", 0, "how long delayed requests wait before they go on, at most 1m")
	fl.Float64Var(&f.DelayPercent, "delay-percent", 0, "share of requests delayed by --delay, from 0.0001 to 100")
	fl.StringVar(&expect, "expect-revision", "", "only change the deployment if it is at this revision")
	_ = cmd.MarkFlagRequired("env")
	_ = cmd.MarkFlagRequired("version")
	g.addOutput(cmd)
	return cmd
}

// faultFlagError speaks of the flags where a fault's validation error
// speaks of the API's fields.
func faultFlagError(err error) error {
	return errors.New(strings.NewReplacer("abort_percent", "--abort-percent", "abort_status", "--abort-status",
		"delay_percent", "--delay-percent", "fault delay", "fault --delay", "needs delay,", "needs --delay,").Replace(err.Error()))
}

func newClearFaultCmd(g *globals) *cobra.Command {
	var env, expect string
	var version int
	cmd := &cobra.Command{
		Use:   "clear-fault MODEL --env ENV --version N",
		Short: "Stop injecting failures into a served version's requests",
		Long: `Stop injecting failures into a served version's requests. Allowed in every
environment, so a fault left from an earlier server configuration can
always be removed; a version without a fault is left as it is.

` + faultHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 1 {
				return fmt.Errorf("--version %d must be a version number", version)
			}
			exp, err := optionalRevision(expect)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.ClearFault(cmd.Context(), args[0], env, version, exp)
			if err != nil {
				return err
			}
			return g.emit(d, plainTable(d))
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().IntVar(&version, "version", 0, "the served version")
	cmd.Flags().StringVar(&expect, "expect-revision", "", "only change the deployment if it is at this revision")
	_ = cmd.MarkFlagRequired("env")
	_ = cmd.MarkFlagRequired("version")
	g.addOutput(cmd)
	return cmd
}
