// Command rollback measures how fast a running slipway server rolls a
// broken canary back: bench/rollback/run.sh starts the server and an
// upstream, then runs this program against them.
//
// It registers model "bench" with a baseline (an external Open Inference
// Protocol version at -upstream) deployed to production, and sends a
// paced open-loop load of -rate requests/s through the gateway for the
// whole measurement. Each of -runs runs then pushes a new candidate (the
// same upstream: identical content, a fresh version number, so every run
// is a rollout of a version nobody has judged before), serves it beside
// the baseline at weight 0, injects a fault that aborts -abort-percent of
// its requests with 500, and starts a canary rollout whose first step is
// -weight % under an `error_rate max: 0.02` rule. The rollout must roll
// the candidate back by itself. Per run it takes:
//
//   - the canary requests the judge had counted at its Fail, and the
//     canary answers before the route swap took effect;
//   - the milliseconds from the candidate's first answer, and from its
//     first failed answer, to the rollback being decided (the history's
//     rolled_back transition) and in effect (the rollout's updated_at
//     when it was stored with in_effect after ApplySplit swapped routes).
//
// Each answer is seen twice: in the gateway's access log (its time is
// when the gateway finished the request and counted it for the judge)
// and by the client (which version answered is the gateway's
// X-Slipway-Version header). The gateway's view is the controller's
// reaction time; the client's adds the time answers take to reach a
// caller, which on a loaded machine is most of it. The client and the
// server read the same wall clock (one machine).
//
// It
// prints each run, then the median and maximum of each figure, and the
// machine's load while it ran. It imports slipway's API client and types,
// not its server: everything goes through the real binary's HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

const (
	model = "bench"
	env   = "production"
)

// inferBody is a small Open Inference Protocol request.
const inferBody = `{"id":"r1","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3.5]}]}`

type config struct {
	apiAddr, gatewayAddr, tokenFile, upstream string
	runs, rate, weight                        int
	abortPercent                              float64
	serverPID                                 int
	serverLog                                 string
	warmup, settle                            time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.apiAddr, "api", "", "slipway API address (host:port)")
	flag.StringVar(&c.gatewayAddr, "gateway", "", "slipway gateway address (host:port)")
	flag.StringVar(&c.tokenFile, "token-file", "", "file holding an admin token")
	flag.StringVar(&c.upstream, "upstream", "", "URL of the OIP upstream every version points at")
	flag.IntVar(&c.runs, "runs", 20, "rollouts to measure")
	flag.IntVar(&c.rate, "rate", 1000, "requests per second through the gateway (open loop)")
	flag.IntVar(&c.weight, "weight", 20, "the canary's first (and judged) weight, percent")
	flag.Float64Var(&c.abortPercent, "abort-percent", 30, "share of the candidate's requests the injected fault aborts with 500")
	flag.IntVar(&c.serverPID, "server-pid", 0, "the server's process ID, to report its CPU use (0: not reported)")
	flag.StringVar(&c.serverLog, "server-log", "", "the server's log file (JSON lines at info), for the gateway's own time of each answer")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "baseline-only load before the first run")
	flag.DurationVar(&c.settle, "settle", time.Second, "baseline-only load between setting a run up and starting its rollout")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/rollback: ")
	if c.apiAddr == "" || c.gatewayAddr == "" || c.tokenFile == "" || c.upstream == "" || c.serverLog == "" {
		log.Fatal("-api, -gateway, -token-file, -upstream and -server-log are required (bench/rollback/run.sh sets them)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		log.Fatal(err)
	}
}

// verbose prints when each run's steps happened, to set beside the
// load's stalls.
var verbose = flag.Bool("v", false, "print each run's timeline")

func run(ctx context.Context, c config) error {
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return err
	}
	cl, err := apiclient.New(c.apiAddr, strings.TrimSpace(string(tok)))
	if err != nil {
		return err
	}
	if _, err := cl.CreateModel(ctx, api.ModelRequest{Name: model, Description: "bench/rollback"}); err != nil {
		return fmt.Errorf("creating model %q: %w", model, err)
	}
	base, err := pushVersion(ctx, cl, c.upstream)
	if err != nil {
		return err
	}
	if _, err := cl.Deploy(ctx, model, fmt.Sprint(base), env, nil); err != nil {
		return fmt.Errorf("deploying the baseline: %w", err)
	}

	load := newOpenLoad("http://"+c.gatewayAddr+"/v2/models/"+model+"/infer", []byte(inferBody), c.rate)
	lctx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	loadDone := make(chan struct{})
	go func() {
		load.run(lctx)
		close(loadDone)
	}()
	defer func() {
		stopLoad()
		<-loadDone
	}()
	if err := sleep(ctx, c.warmup); err != nil {
		return err
	}

	fmt.Printf("%d runs: open-loop %d requests/s through the gateway; candidate at %d %%, %g %% of its requests aborted with 500; rule error_rate max 0.02, falseRollbackRate 0.01\n",
		c.runs, c.rate, c.weight, c.abortPercent)
	fmt.Println(resultHeader)
	mach := startMachine(c.serverPID)
	gl := &gatewayLog{path: c.serverLog}
	var results []result
	for i := 1; i <= c.runs; i++ {
		r, err := oneRun(ctx, cl, load, gl, c, base, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		fmt.Println(r.line())
		if *verbose {
			fmt.Printf("      run %d: set up from %s, rollout started %s, first canary answer %s, decided %s, in effect %s\n", i,
				r.setup.Format("15:04:05.000"), r.started.Format("15:04:05.000"), r.gateway.first.Format("15:04:05.000"),
				r.decided.Format("15:04:05.000"), r.inEffect.Format("15:04:05.000"))
		}
		results = append(results, r)
	}
	m := mach.stop()
	stopLoad()
	<-loadDone
	summarize(results, load, m, c)
	return nil
}

// oneRun measures one rollout of a fresh faulty candidate.
func oneRun(ctx context.Context, cl *apiclient.Client, load *openLoad, gl *gatewayLog, c config, base, i int) (result, error) {
	setup := time.Now()
	cand, err := pushVersion(ctx, cl, c.upstream)
	if err != nil {
		return result{}, err
	}
	// The candidate joins at weight 0 (the previous run's candidate
	// leaves), so the fault can be set before it takes a request; the
	// rollout's first step finds it there and keeps its fault.
	if _, err := cl.SetTraffic(ctx, model, env, map[int]int{base: 100, cand: 0}, nil); err != nil {
		return result{}, fmt.Errorf("serving candidate %d at weight 0: %w", cand, err)
	}
	f := domain.Fault{AbortPercent: c.abortPercent, AbortStatus: 500}
	if _, err := cl.SetFault(ctx, model, env, cand, f, nil); err != nil {
		return result{}, fmt.Errorf("injecting the fault into version %d: %w", cand, err)
	}
	if err := sleep(ctx, c.settle); err != nil {
		return result{}, err
	}
	spec := fmt.Sprintf(`kind: Rollout
model: %s
environment: %s
candidate: "%d"
strategy:
  canary:
    steps:
      - weight: %d
analysis:
  rules:
    - metric: error_rate
      max: 0.02
  falseRollbackRate: 0.01
rollback: automatic
`, model, env, cand, c.weight)
	idle0, total0, _ := cpuStat()
	started := time.Now()
	ro, err := cl.StartRollout(ctx, fmt.Sprintf("run-%d.yaml", i), []byte(spec), false)
	if err != nil {
		return result{}, fmt.Errorf("starting the rollout of version %d: %w", cand, err)
	}
	// Wait for the end to be in effect; the figures come from the stored
	// record, so the polling pace does not enter them.
	deadline := time.Now().Add(60 * time.Second)
	for !(ro.Phase.Terminal() && ro.InEffect) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("rollout %d of version %d is %s (in effect: %t) after 60 s: %s", ro.ID, cand, ro.Phase, ro.InEffect, ro.Reason)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return result{}, err
		}
		st, err := cl.RolloutStatus(ctx, ro.ID)
		if err != nil {
			return result{}, err
		}
		ro = st.Rollout
	}
	// Every request sent before the swap took effect may still have
	// gone to the candidate: wait for all of their answers.
	// (The client gives up on a request after 10 s; a machine so loaded
	// that even that takes longer gets a warning, and the figures of the
	// answers that did arrive.)
	deadline = time.Now().Add(30 * time.Second)
	for !load.answeredUpTo(ro.UpdatedAt) {
		if time.Now().After(deadline) {
			log.Printf("run %d: requests sent before the swap are still unanswered after 30 s; the machine is overloaded", i)
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return result{}, err
		}
	}
	if ro.Phase != domain.RolloutRolledBack {
		return result{}, fmt.Errorf("rollout %d of version %d ended %s, not rolled_back: %s", ro.ID, cand, ro.Phase, ro.Reason)
	}
	// The gateway's log lines of those answers are out within 100 ms.
	if err := sleep(ctx, 250*time.Millisecond); err != nil {
		return result{}, err
	}
	seen, err := gl.candidate(cand)
	if err != nil {
		return result{}, err
	}
	r, err := measure(i, cand, ro, load.answers(), load, seen)
	r.setup, r.started = setup, started
	if idle, total, _ := cpuStat(); total > total0 {
		r.busy = 100 * (1 - (idle-idle0)/(total-total0))
	}
	return r, err
}

func pushVersion(ctx context.Context, cl *apiclient.Client, upstream string) (int, error) {
	v, err := cl.PushVersion(ctx, model, api.VersionRequest{
		Format:        domain.FormatExternal,
		RuntimeConfig: map[string]string{"url": upstream, "protocol": "oip-v2"},
	})
	if err != nil {
		return 0, fmt.Errorf("pushing a version: %w", err)
	}
	return v.Number, nil
}

// measure reads one run's figures from the rollout's record, the
// answers the client saw and those the gateway logged.
func measure(i, cand int, ro domain.Rollout, answers []answer, load *openLoad, logged []access) (result, error) {
	r := result{run: i, candidate: cand, rollout: ro.ID, inEffect: ro.UpdatedAt}
	for _, h := range ro.History {
		if h.To == domain.RolloutRolledBack {
			r.decided = h.At
		}
	}
	for _, v := range ro.Verdicts {
		if v.Outcome == domain.AnalysisFail {
			r.judged = v.CandidateRequests
		}
	}
	if r.decided.IsZero() {
		return r, errors.New("the rollout's history has no rolled_back transition")
	}
	for _, a := range answers {
		if a.version != cand {
			continue
		}
		r.client.add(load.at(a.done), a.status >= 500 || a.failed, r.inEffect)
		r.clientLast = later(r.clientLast, load.at(a.done))
	}
	for _, a := range logged {
		r.gateway.add(a.at, a.status >= 500, r.inEffect)
	}
	from := r.gateway.first.Add(-time.Second)
	for _, a := range answers {
		if at := load.at(a.sent); at.After(from) && !at.After(r.inEffect) {
			r.late = max(r.late, ms(a.sent-a.scheduled))
		}
	}
	if r.client.failed == 0 || r.gateway.failed == 0 {
		return r, fmt.Errorf("version %d: the client saw %d answers (%d failed), the gateway logged %d (%d failed); the rollout was rolled back without a failure seen: %s",
			cand, r.client.answered, r.client.failed, r.gateway.answered, r.gateway.failed, ro.Reason)
	}
	return r, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
