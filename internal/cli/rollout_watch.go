package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

// watchGiveUp is how long watch keeps asking a server that does not
// answer (a restart mid-rollout takes seconds) before it gives up.
const watchGiveUp = time.Minute

func newRolloutWatchCmd(g *globals) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch ID [--interval 250ms]",
		Short: "Follow a rollout live until it ends",
		Long: `Follow a rollout until it ends. On a terminal the view is redrawn every
--interval: the current step in the plan, a traffic bar per version, each
rule's candidate and baseline values against its threshold, the judge's
verdict and its reason, and the verdicts recorded with their evidence.
When the output is not a terminal (a pipe, a CI log) it appends one
timestamped line per change of phase, step, traffic or verdict.

Exits 0 when the rollout succeeds, 1 when it ends otherwise (rolled back,
aborted, failed, superseded), with a final line saying so; also 1 when
interrupted, or when the server has not answered for a minute.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := rolloutID(args[0])
			if err != nil {
				return err
			}
			if interval < 10*time.Millisecond || interval > time.Minute {
				return fmt.Errorf("--interval %s must be from 10ms to 1m", interval)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			w := &watcher{out: g.stdout, id: id, interval: interval, tty: isTerminal(g.stdout),
				status: func(ctx context.Context) (api.RolloutStatus, error) { return c.RolloutStatus(ctx, id) }}
			return w.run(cmd.Context())
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 250*time.Millisecond, "how often to ask the server")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// watcher follows one rollout: it asks for its status every interval
// and draws it, until the rollout has ended and its end is in effect.
type watcher struct {
	out      io.Writer
	id       int64
	interval time.Duration
	tty      bool
	status   func(ctx context.Context) (api.RolloutStatus, error)

	prev    *api.RolloutStatus
	failing time.Time // when the server stopped answering; zero: it answers
}

func (w *watcher) run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		st, err := w.status(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return w.interrupted()
		case err != nil:
			if !transient(err) {
				return err
			}
			if w.failing.IsZero() {
				w.failing = now
				if !w.tty {
					fmt.Fprintf(w.out, "%s the server does not answer (%s); asking again\n", stamp(now), cell(err.Error()))
				}
			}
			if now.Sub(w.failing) > watchGiveUp {
				return fmt.Errorf("the server has not answered for %s: %w", watchGiveUp, err)
			}
			if w.tty && w.prev != nil {
				w.draw(*w.prev, now, "the server does not answer ("+err.Error()+"); asking again")
			}
		default:
			if !w.failing.IsZero() && !w.tty {
				fmt.Fprintf(w.out, "%s the server answers again\n", stamp(now))
			}
			w.failing = time.Time{}
			if w.tty {
				w.draw(st, now, "")
			} else {
				for _, l := range watchLines(w.prev, st, now) {
					fmt.Fprintln(w.out, l)
				}
			}
			w.prev = &st
			if r := st.Rollout; r.Phase.Terminal() && r.InEffect {
				final, err := rolloutEnd(r)
				if w.tty {
					fmt.Fprintln(w.out)
				} else {
					final = stamp(now) + " " + final
				}
				fmt.Fprintln(w.out, cell(final))
				return err
			}
		}
		select {
		case <-ctx.Done():
			return w.interrupted()
		case <-t.C:
		}
	}
}

func (w *watcher) interrupted() error {
	if w.prev == nil {
		return fmt.Errorf("stopped watching rollout %d", w.id)
	}
	return fmt.Errorf("stopped watching; rollout %d is %s", w.id, phaseText(w.prev.Rollout.Phase))
}

// draw redraws the terminal view in place: home, each line cleared to
// its end, the rest of the screen cleared.
func (w *watcher) draw(st api.RolloutStatus, now time.Time, problem string) {
	var b strings.Builder
	b.WriteString("\x1b[H")
	head := fmt.Sprintf("watching rollout %d every %s — %s — Ctrl-C stops watching (not the rollout)", w.id, w.interval, now.UTC().Format("15:04:05"))
	if problem != "" {
		head += "\n" + cell(problem)
	}
	for _, l := range strings.Split(head+"\n\n"+rolloutReport(st, reportWatch), "\n") {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	_, _ = io.WriteString(w.out, b.String())
}

// transient reports whether asking again may help: the server is down,
// restarting or overloaded, not refusing the question.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var e *apiclient.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return true
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// watchLines are the plain lines for what changed between prev (nil at
// the first look) and cur: one line per change of phase, step, traffic,
// the judge's live outcome, and each verdict newly recorded with its
// evidence. A live verdict's reason changes with every request, so only
// a new outcome (or run) makes a line.
func watchLines(prev *api.RolloutStatus, cur api.RolloutStatus, now time.Time) []string {
	r := cur.Rollout
	var out []string
	add := func(format string, args ...any) {
		out = append(out, stamp(now)+" "+cell(fmt.Sprintf(format, args...)))
	}
	var p domain.Rollout
	if prev == nil {
		add("rollout %d: %s in %s, version %d → %d (%s)", r.ID, r.Model, r.Environment, r.Baseline, r.Candidate, r.Strategy)
	} else {
		p = prev.Rollout
	}
	if prev == nil || p.Phase != r.Phase {
		if r.Reason != "" {
			add("phase %s — %s", phaseText(r.Phase), r.Reason)
		} else {
			add("phase %s", phaseText(r.Phase))
		}
	}
	if (prev == nil || p.Step != r.Step) && r.Step < len(cur.Steps) {
		add("step %d of %d: %s", r.Step+1, len(cur.Steps), cur.Steps[r.Step].Description)
	}
	if prev == nil || p.Traffic.Baseline != r.Traffic.Baseline || p.Traffic.Candidate != r.Traffic.Candidate ||
		p.Traffic.ShadowPercent != r.Traffic.ShadowPercent || p.Traffic.BaselineRetired != r.Traffic.BaselineRetired {
		add("traffic %s", trafficText(r))
	}
	if l := cur.Live; l != nil {
		var was *api.RolloutStatus
		if prev != nil && prev.Live != nil {
			was = prev
		}
		if was == nil || was.Live.Run != l.Run || was.Live.Verdict.Outcome != l.Verdict.Outcome {
			v := l.Verdict
			add("verdict %s (run %d; candidate %s; baseline %s): %s",
				strings.ToUpper(string(v.Outcome)), l.Run, requestsText(v.Candidate), requestsText(v.Baseline), v.Reason)
		}
	}
	seen := 0
	if prev != nil {
		seen = len(p.Verdicts)
	}
	if seen > len(r.Verdicts) {
		seen = 0 // a different record; show them all
	}
	for _, v := range r.Verdicts[seen:] {
		add("recorded %s", verdictLine(v))
	}
	return out
}
