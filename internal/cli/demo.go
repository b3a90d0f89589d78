package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-ml/slipway/examples/breast-cancer"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
)

// demoModel is the model the demo ships.
const demoModel = "breast-cancer"

// demoRate is the synthetic clients' requests per second.
const demoRate = 400

func newDemoCmd(g *globals) *cobra.Command {
	var keep bool
	var dataDir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole supply chain on a temporary server in under a minute: gates, approval, a canary, an automatic rollback",
		Long: `Start a temporary slipway server in this process (a temporary data
folder, loopback ports) and show the supply chain on the breast-cancer
example models, under synthetic traffic made from its holdout rows:

  1. v1 serves production; the production gate policy is applied.
  2. v2 is rejected by the gate (the table says which rules failed).
  3. v3 passes the gate, a second person (a demo approver) approves it,
     and a canary rollout moves production to it step by step while
     slipway compares it with v1.
  4. v4 (v3's model) is approved too, then rolled out with an injected
     fault (30 % of its requests answer 500, +50 ms): slipway rolls it
     back by itself.

It prints the timeline and the figures: requests served, client-visible
errors, and the time from the first bad answer to 0 % weight. With --keep
the server stays up for exploring with the other commands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.runServer == nil {
				return errors.New("this build of slipway has no server")
			}
			return runDemo(cmd.Context(), g, dataDir, keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the server running (until Ctrl-C) for exploring")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "folder for the demo's state (default: a new temporary folder, removed at the end unless --keep)")
	return cmd
}

// demo is one run's state: the server, clients and the timeline.
type demo struct {
	out      io.Writer
	start    time.Time
	admin    *apiclient.Client
	approver *apiclient.Client
	api      string
	gateway  string
	traffic  *traffic
}

// say prints a timeline line: seconds since the start, a topic, a text.
func (d *demo) say(topic, format string, args ...any) {
	fmt.Fprintf(d.out, "%6.1fs  %-10s %s\n", time.Since(d.start).Seconds(), topic, fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, g *globals, dataDir string, keep bool) (err error) {
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "slipway-demo-"); err != nil {
			return err
		}
		if !keep {
			defer os.RemoveAll(dataDir)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	opts, err := demoServerOptions(dataDir, slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	type addrs struct{ api, gateway string }
	ready := make(chan addrs, 1)
	opts.Ready = func(a, gw string) { ready <- addrs{a, gw} }
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- g.runServer(srvCtx, opts) }()
	defer func() {
		stopServer()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()
	var at addrs
	select {
	case at = <-ready:
	case serr := <-served:
		served <- serr
		return fmt.Errorf("the demo server did not start: %w", serr)
	case <-ctx.Done():
		return ctx.Err()
	}
	d := &demo{out: g.stdout, start: time.Now(), api: at.api, gateway: at.gateway}
	fmt.Fprintf(d.out, "slipway demo: a temporary server — API %s, gateway %s, data in %s (server log: server.log)\n\n", at.api, at.gateway, dataDir)
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return fmt.Errorf("the demo server wrote no admin token: %w", err)
	}
	if d.admin, err = apiclient.New(at.api, strings.TrimSpace(string(tok))); err != nil {
		return err
	}
	if err := d.run(ctx); err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(d.out, "\nThe server keeps running (Ctrl-C stops it). In another terminal:\n"+
			"  export SLIPWAY_ADDR=%s SLIPWAY_TOKEN=$(cat %s)\n"+
			"  slipway rollout history %s\n  slipway promotion list %s\n  slipway audit verify\n"+
			"  curl -s -H 'Content-Type: application/json' http://%s/v2/models/%s/infer -d @request.json\n",
			at.api, filepath.Join(dataDir, "admin.token"), demoModel, demoModel, at.gateway, demoModel)
		<-ctx.Done()
	}
	return nil
}

// demoServerOptions are the server's defaults, on loopback port 0, with
// fault injection allowed in production (the demo breaks v4 there).
func demoServerOptions(dataDir string, log *slog.Logger) (ServerOptions, error) {
	o := ServerOptions{
		DataDir: dataDir, Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", MaxBodyBytes: 1 << 20, MaxBlobBytes: 1 << 30,
		ShutdownTimeout: 5 * time.Second, Log: log, FaultInjectionEnvs: "dev,staging,production",
	}
	// The flags' defaults, as `slipway server` would take them.
	f := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	addGatewayResilienceFlags(f, &o.Resilience)
	addGatewayLimitFlags(f, &o.Limits)
	addRolloutFlags(f, &o.Rollouts)
	if err := f.Parse(nil); err != nil {
		return o, err
	}
	o.Rollouts.PrometheusURL, o.Rollouts.PrometheusTokenFile = "", ""
	o.Limits = o.Limits.normalized()
	return o, nil
}

// run is the scenario.
func (d *demo) run(ctx context.Context) error {
	c := d.admin
	if _, err := c.CreateModel(ctx, api.ModelRequest{Name: demoModel, Description: "Wisconsin breast-cancer classifier (the slipway demo)"}); err != nil {
		return err
	}
	for i, m := range [][]byte{breastcancer.V1, breastcancer.V2, breastcancer.V3} {
		if _, err := d.push(ctx, m, fmt.Sprintf("v%d of the example", i+1)); err != nil {
			return err
		}
	}
	d.say("registry", "pushed %s v1 (100 trees), v2 (3 shallow trees), v3 (400 trees)", demoModel)
	if _, err := c.Promote(ctx, demoModel, api.PromoteRequest{Version: "1", To: "production", BreakGlass: true, Reason: "the first champion, before gates existed"}); err != nil {
		return err
	}
	if _, err := c.Deploy(ctx, demoModel, "1", "production", nil); err != nil {
		return err
	}
	d.say("deploy", "v1 is the champion and serves production")
	if _, err := c.PushDataset(ctx, "bc-holdout", "csv", apiclient.DatasetRoles{Label: "label", Segments: []string{"size_band"}, Sensitive: "age_band"},
		int64(len(breastcancer.HoldoutEval)), bytes.NewReader(breastcancer.HoldoutEval)); err != nil {
		return err
	}
	if _, err := c.Apply(ctx, "policy-production.yaml", breastcancer.PolicyProduction); err != nil {
		return err
	}
	d.say("gate", "production policy: roc_auc ≥ 0.95, f1 ≥ champion's − 0.01, latency p99 ≤ 20 ms, TPR gap across age bands ≤ 0.05, one approver")
	apTok, err := c.CreateToken(ctx, "demo-approver", domain.RoleApprover)
	if err != nil {
		return err
	}
	if d.approver, err = apiclient.New(d.api, apTok.Secret); err != nil {
		return err
	}

	p2, err := c.Promote(ctx, demoModel, api.PromoteRequest{Version: "2", To: "production"})
	if err != nil {
		return err
	}
	if p2.State != domain.PromotionRejected {
		return fmt.Errorf("the gate should have rejected v2; promotion %d is %s", p2.ID, p2.State)
	}
	d.say("gate", "v2 rejected: %s", p2.Reason)
	if err := printTable(d.out, gateTable(p2)); err != nil {
		return err
	}
	if err := d.approve(ctx, "3"); err != nil {
		return err
	}

	tr, err := newTraffic(d.gateway, demoModel, breastcancer.Holdout)
	if err != nil {
		return err
	}
	d.traffic = tr
	trCtx, stopTraffic := context.WithCancel(ctx)
	trDone := make(chan struct{})
	go func() {
		defer close(trDone)
		tr.run(trCtx, demoRate, 8)
	}()
	defer func() {
		stopTraffic()
		<-trDone
	}()
	d.say("traffic", "synthetic clients send %d requests/s of holdout rows through the gateway", demoRate)

	r3, err := d.rollout(ctx, demoCanary("3"))
	if err != nil {
		return err
	}
	if r3.Phase != domain.RolloutSucceeded {
		return fmt.Errorf("the healthy canary of v3 ended %s: %s", r3.Phase, r3.Reason)
	}
	if _, err := d.push(ctx, breastcancer.V3, "v3's model, to be broken on purpose"); err != nil {
		return err
	}
	d.say("registry", "pushed v4: v3's model again, to be broken on purpose at the gateway")
	if err := d.approve(ctx, "4"); err != nil {
		return err
	}
	r4, err := d.faultyRollout(ctx)
	if err != nil {
		return err
	}
	stopTraffic()
	<-trDone
	return d.report(ctx, r4)
}

// push uploads a model file and registers it as the next version.
func (d *demo) push(ctx context.Context, model []byte, note string) (domain.Version, error) {
	digest := artifact.DigestOf(model)
	if _, err := d.admin.PutBlob(ctx, digest, int64(len(model)), bytes.NewReader(model)); err != nil {
		return domain.Version{}, err
	}
	m := &artifact.Manifest{Files: []artifact.File{{Path: "model.json", Size: int64(len(model)), SHA256: strings.TrimPrefix(digest, "sha256:")}}}
	return d.admin.PushVersion(ctx, demoModel, api.VersionRequest{Format: domain.FormatXGBoostJSON, Manifest: m,
		Labels: map[string]string{"demo": "true"}, Lineage: domain.Lineage{DatasetURI: "sklearn:load_breast_cancer", Framework: "xgboost"}})
}

// approve promotes a version to production and has the demo approver
// approve it.
func (d *demo) approve(ctx context.Context, version string) error {
	p, err := d.admin.Promote(ctx, demoModel, api.PromoteRequest{Version: api.VersionRef(version), To: "production"})
	if err != nil {
		return err
	}
	if p.State != domain.PromotionPending {
		return fmt.Errorf("v%s should have passed the gate and waited for approval; promotion %d is %s: %s", version, p.ID, p.State, p.Reason)
	}
	d.say("gate", "v%s passed every rule; promotion %d waits for an approver (its author may not approve)", version, p.ID)
	if p, err = d.approver.Decide(ctx, p.ID, true, "the numbers hold (demo approver)"); err != nil {
		return err
	}
	d.say("approve", "demo-approver approved v%s: promotion %s, champion is v%s", version, p.State, version)
	return nil
}

// demoCanary is the rollout spec of the demo's canaries.
func demoCanary(candidate string) string {
	return `kind: Rollout
model: ` + demoModel + `
environment: production
candidate: "` + candidate + `"
strategy:
  canary:
    steps:
      - weight: 20
      - weight: 50
      - weight: 100
analysis:
  minSamples: 200
  rules:
    - metric: error_rate
      max: 0.02
      maxVsBaseline: 0.01
    - metric: client_error_rate
      maxVsBaseline: 0.01
    - metric: latency_p99_ms
      maxRatioVsBaseline: 3
  falseRollbackRate: 0.01
rollback: automatic
progressDeadline: 1m
`
}

// rollout starts a rollout and follows it to its end, printing each
// transition as it is stored.
func (d *demo) rollout(ctx context.Context, spec string) (domain.Rollout, error) {
	r, err := d.admin.StartRollout(ctx, "demo-rollout.yaml", []byte(spec), false)
	if err != nil {
		return r, err
	}
	d.say(fmt.Sprintf("rollout %d", r.ID), "v%d → v%d: canary 20 %% → 50 %% → 100 %%, judged on error rate and latency p99 against v%d", r.Baseline, r.Candidate, r.Baseline)
	return d.follow(ctx, r.ID, nil)
}

// follow polls a rollout until it has ended and its end is in effect,
// printing new transitions; after, when not nil, runs once right after
// the first poll.
func (d *demo) follow(ctx context.Context, id int64, after func() error) (domain.Rollout, error) {
	seen := 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := d.admin.RolloutStatus(ctx, id)
		if err != nil {
			return domain.Rollout{}, err
		}
		r := st.Rollout
		for _, h := range r.History[min(seen, len(r.History)):] {
			why := h.Reason
			if h.By != "" && !strings.Contains(why, h.By) {
				why += " (" + h.By + ")"
			}
			d.say(fmt.Sprintf("rollout %d", id), "%-17s %s", string(h.To), why)
		}
		seen = len(r.History)
		if after != nil {
			if err := after(); err != nil {
				return r, err
			}
			after = nil
		}
		if r.Phase.Terminal() && r.InEffect {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("rollout %d is still %s after 2 minutes: %s", id, r.Phase, r.Reason)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// faultyRollout rolls v4 out and breaks it as soon as it serves.
func (d *demo) faultyRollout(ctx context.Context) (domain.Rollout, error) {
	r, err := d.admin.StartRollout(ctx, "demo-rollout.yaml", []byte(demoCanary("4")), false)
	if err != nil {
		return r, err
	}
	d.say(fmt.Sprintf("rollout %d", r.ID), "v%d → v%d: the same canary", r.Baseline, r.Candidate)
	f := domain.Fault{AbortPercent: 30, AbortStatus: 500, DelayPercent: 100, Delay: domain.Duration(50 * time.Millisecond)}
	r, err = d.follow(ctx, r.ID, func() error {
		if _, err := d.admin.SetFault(ctx, demoModel, "production", 4, f, nil); err != nil {
			return err
		}
		d.say("chaos", "fault injected into v4: %s", f.String())
		return nil
	})
	if err != nil {
		return r, err
	}
	if r.Phase != domain.RolloutRolledBack {
		return r, fmt.Errorf("the faulty canary of v4 ended %s, not rolled back: %s", r.Phase, r.Reason)
	}
	return r, nil
}

// report prints the figures.
func (d *demo) report(ctx context.Context, r4 domain.Rollout) error {
	f := d.traffic.figures()
	fmt.Fprintf(d.out, "\nFigures\n")
	fmt.Fprintf(d.out, "  requests served             %d (v1 %d, v3 %d, v4 %d)\n", f.Served, f.ByVersion[1], f.ByVersion[3], f.ByVersion[4])
	fmt.Fprintf(d.out, "  client-visible errors       %d\n", f.Errors)
	var rolledBack time.Time
	for _, h := range r4.History {
		if h.To == domain.RolloutRolledBack {
			rolledBack = h.At
		}
	}
	if len(r4.Verdicts) > 0 {
		v := r4.Verdicts[len(r4.Verdicts)-1]
		fmt.Fprintf(d.out, "  verdict on v4               %s on %d v4 requests: %s\n", v.Outcome, v.CandidateRequests, v.Reason)
	}
	if first, ok := f.FirstBad[4]; ok && !rolledBack.IsZero() {
		fmt.Fprintf(d.out, "  first bad answer → 0 %%      %d ms (v4 answered or failed %d client requests in all)\n",
			rolledBack.Sub(first).Milliseconds(), f.Touched[4])
	} else {
		fmt.Fprintf(d.out, "  first bad answer → 0 %%      no bad answer of v4 reached a client\n")
	}
	rep, err := d.admin.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	verdict := "hash chain verified"
	if !rep.OK {
		verdict = fmt.Sprintf("DOES NOT VERIFY at entry %d", rep.FirstBadIndex)
	}
	fmt.Fprintf(d.out, "  audit log                   %d entries, %s\n", rep.Entries, verdict)
	fmt.Fprintf(d.out, "  time                        %.1f s\n", time.Since(d.start).Seconds())
	if !rep.OK {
		return errors.New("the audit log does not verify")
	}
	return nil
}
