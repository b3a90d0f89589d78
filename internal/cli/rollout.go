package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
)

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a version out step by step, judged against the one it replaces",
		Long: `A rollout moves one environment's traffic for one model from the version
serving now (the baseline) to a candidate, step by step, while slipway
compares the two and puts the baseline back by itself when the candidate
misbehaves. Start one from a kind: Rollout document (docs/rollouts.md),
follow it with 'slipway rollout watch ID', and steer it with pause, resume,
promote, abort, undo, approve and reject.`,
	}
	cmd.AddCommand(newRolloutStartCmd(g))
	for _, c := range []struct {
		kind  rollout.CommandKind
		short string
	}{
		{rollout.CommandPause, "Hold the rollout's traffic where it is (judging goes on)"},
		{rollout.CommandResume, "Carry on a paused rollout (a fresh analysis run; the step's clock restarts)"},
		{rollout.CommandPromote, "Skip the remaining steps: all traffic to the candidate"},
		{rollout.CommandAbort, "End the rollout: all traffic back to the baseline"},
		{rollout.CommandUndo, "Put the baseline back after the switch, while it is still warm"},
	} {
		cmd.AddCommand(newRolloutCommandCmd(g, c.kind, c.short))
	}
	cmd.AddCommand(newRolloutDecideCmd(g, true), newRolloutDecideCmd(g, false),
		newRolloutStatusCmd(g), newRolloutGetCmd(g), newRolloutHistoryCmd(g), newRolloutWatchCmd(g))
	return cmd
}

// readDocumentFile reads -f FILE (- for standard input) for apply and
// rollout start.
func readDocumentFile(cmd *cobra.Command, file string) (name string, doc []byte, err error) {
	if file == "" {
		return "", nil, fmt.Errorf("-f FILE is required (- for standard input)")
	}
	var r io.Reader = cmd.InOrStdin()
	name = "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		r, name = f, file
	}
	doc, err = io.ReadAll(io.LimitReader(r, maxApplyFile+1))
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(doc) > maxApplyFile {
		return "", nil, fmt.Errorf("%s is larger than %d bytes", name, maxApplyFile)
	}
	return name, doc, nil
}

func newRolloutStartCmd(g *globals) *cobra.Command {
	var file string
	var supersede bool
	cmd := &cobra.Command{
		Use:   "start -f FILE [--supersede]",
		Short: "Start a rollout from a kind: Rollout document",
		Long: `Start a rollout from a kind: Rollout document (slipway apply -f does the
same). The baseline is the version the environment serves now; the
candidate is the document's, resolved now. When the environment has a gate
policy the candidate must have been promoted into it. A model has at most
one active rollout per environment: --supersede ends the active one (its
baseline put back) before this one starts. A YAML error is refused with
the file, line and reason. Needs the deployer role. -f - reads standard
input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, doc, err := readDocumentFile(cmd, file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.StartRollout(cmd.Context(), name, doc, supersede)
			if err != nil {
				return err
			}
			if r.Phase.Terminal() {
				// Its first steps ended it (a candidate that cannot be
				// served): a script must not read that as started.
				if err := g.emitRollout(r, ""); err != nil {
					return err
				}
				return fmt.Errorf("rollout %d ended as soon as it started: %s: %s", r.ID, phaseText(r.Phase), r.Reason)
			}
			return g.emitRollout(r, "started; follow it with: slipway rollout watch "+strconv.FormatInt(r.ID, 10))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the Rollout document (- for standard input)")
	cmd.Flags().BoolVar(&supersede, "supersede", false, "end the model's active rollout in the environment first")
	g.addOutput(cmd)
	return cmd
}

// rolloutID parses a rollout ID argument.
func rolloutID(s string) (int64, error) { return recordID("rollout", s) }

// recordID parses the ID argument of a rollout or a promotion.
func recordID(noun, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%s ID %q must be a number from 1", noun, s)
	}
	return id, nil
}

// actionCmd is a command that acts on one rollout or promotion named by
// its ID and says why in a text flag: the rollout commands, and approve
// and reject of rollouts and promotions.
type actionCmd struct {
	noun        string // rollout or promotion, for a bad ID's error
	use, short  string
	long        string // the help after short
	flag, usage string // the text flag: --reason or --comment
	required    bool   // the text may not be blank: a rejection says why
	act         func(ctx context.Context, c *apiclient.Client, id int64, text string) error
}

func (g *globals) newActionCmd(a actionCmd) *cobra.Command {
	var text string
	cmd := &cobra.Command{
		Use:   a.use,
		Short: a.short,
		Long:  a.short + a.long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := recordID(a.noun, args[0])
			if err != nil {
				return err
			}
			if a.required && strings.TrimSpace(text) == "" {
				return fmt.Errorf("--%s TEXT is required: say why", a.flag)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return a.act(cmd.Context(), c, id, text)
		},
	}
	cmd.Flags().StringVar(&text, a.flag, "", a.usage)
	g.addOutput(cmd)
	return cmd
}

// decisionCmd is approve or reject, of a rollout's approval step or of a
// promotion: reject needs a comment.
func decisionCmd(approve bool, approveShort, rejectShort string) actionCmd {
	a := actionCmd{use: "approve ID [--comment TEXT]", short: approveShort, flag: "comment", usage: "what you checked, or why you reject"}
	if !approve {
		a.use, a.short, a.required = "reject ID --comment TEXT", rejectShort, true
	}
	return a
}

func newRolloutCommandCmd(g *globals, kind rollout.CommandKind, short string) *cobra.Command {
	return g.newActionCmd(actionCmd{noun: "rollout", use: string(kind) + " ID [--reason TEXT]", short: short,
		long: `. The rollout's phase must accept it (docs/rollouts.md,
"Manual commands"); otherwise the command is refused with the phase and
what it accepts. Needs the deployer role; promoting past an approval step
still ahead needs a token that may give that approval.`,
		flag: "reason", usage: "why, for the rollout's history and the audit log", act: g.rolloutCommand(kind)})
}

func newRolloutDecideCmd(g *globals, approve bool) *cobra.Command {
	a := decisionCmd(approve, "Approve the rollout's current approval step", "Reject the rollout's current approval step, aborting it")
	a.noun = "rollout"
	a.long = `. Your token's role must allow the role the step names
(approver unless the document says otherwise), and whoever started the
rollout may not approve it: separation of duties needs someone else.`
	kind := rollout.CommandApprove
	if !approve {
		kind = rollout.CommandReject
	}
	a.act = g.rolloutCommand(kind)
	return g.newActionCmd(a)
}

// rolloutCommand sends a command to a rollout and prints the rollout as
// the command left it.
func (g *globals) rolloutCommand(kind rollout.CommandKind) func(context.Context, *apiclient.Client, int64, string) error {
	return func(ctx context.Context, c *apiclient.Client, id int64, reason string) error {
		r, err := c.RolloutCommand(ctx, id, kind, reason)
		if err != nil {
			return err
		}
		return g.emitRollout(r, "")
	}
}

// rolloutStatus reads the status of the rollout an argument names.
func (g *globals) rolloutStatus(cmd *cobra.Command, arg string) (api.RolloutStatus, error) {
	id, err := rolloutID(arg)
	if err != nil {
		return api.RolloutStatus{}, err
	}
	c, err := g.client()
	if err != nil {
		return api.RolloutStatus{}, err
	}
	return c.RolloutStatus(cmd.Context(), id)
}

func newRolloutStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a rollout: its step in the plan, traffic, each rule against its threshold, the verdict",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.rolloutStatus(cmd, args[0])
			if err != nil {
				return err
			}
			if g.output != "table" && g.output != "" {
				return g.emit(st, nil)
			}
			_, err = io.WriteString(g.stdout, rolloutReport(st, reportFull))
			return err
		},
	}
	g.addOutput(cmd)
	return cmd
}

func newRolloutGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a rollout's stored record (-o json or yaml for all of it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.rolloutStatus(cmd, args[0])
			if err != nil {
				return err
			}
			return g.emit(st.Rollout, rolloutTable(st.Rollout))
		},
	}
	g.addOutput(cmd)
	return cmd
}

func newRolloutHistoryCmd(g *globals) *cobra.Command {
	var f apiclient.RolloutFilter
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "history [MODEL] [--env ENV] [--phase PHASE] [--active]",
		Short: "List rollouts, newest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				f.Model = args[0]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListRollouts(cmd.Context(), f, p)
			if err != nil {
				return err
			}
			if err := g.emit(l, rolloutTable(l.Items...)); err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.Environment, "env", "", "only rollouts in this environment")
	cmd.Flags().StringVar(&f.Phase, "phase", "", "only rollouts in this phase (pending, progressing, paused, awaiting_approval, promoting, succeeded, aborted, rolled_back, failed, superseded)")
	cmd.Flags().BoolVar(&f.Active, "active", false, "only rollouts that have not ended")
	cmd.Flags().IntVar(&p.Limit, "limit", 0, "page size (default 100)")
	cmd.Flags().StringVar(&p.Cursor, "cursor", "", "the next cursor of the previous page")
	g.addOutput(cmd)
	return cmd
}

// rolloutTable is one row per rollout.
func rolloutTable(rs ...domain.Rollout) func() table {
	return func() table {
		t := table{header: []string{"ID", "MODEL", "ENVIRONMENT", "STRATEGY", "BASELINE", "CANDIDATE", "PHASE", "STEP", "TRAFFIC", "CREATED BY", "UPDATED", "REASON"}}
		for _, r := range rs {
			t.rows = append(t.rows, []string{strconv.FormatInt(r.ID, 10), r.Model, r.Environment, r.Strategy,
				strconv.Itoa(r.Baseline), strconv.Itoa(r.Candidate), string(r.Phase), strconv.Itoa(r.Step + 1),
				trafficText(r), r.CreatedBy, ago(r.UpdatedAt), oneLine(r.Reason)})
		}
		return t
	}
}

// emitRollout prints a rollout: its summary line (and note) in table
// mode, the record as JSON or YAML otherwise.
func (g *globals) emitRollout(r domain.Rollout, note string) error {
	if g.output != "table" && g.output != "" {
		return g.emit(r, nil)
	}
	s := rolloutSummary(r)
	if note != "" {
		s += "\n" + note
	}
	_, err := fmt.Fprintln(g.stdout, cell(s))
	return err
}

// rolloutSummary says where a rollout stands, in one line.
func rolloutSummary(r domain.Rollout) string {
	s := fmt.Sprintf("rollout %d: %s in %s, version %d → %d (%s): %s at step %d, %s",
		r.ID, r.Model, r.Environment, r.Baseline, r.Candidate, r.Strategy, phaseText(r.Phase), r.Step+1, trafficText(r))
	if r.Reason != "" {
		s += " — " + r.Reason
	}
	return s
}

// applyRolloutRow is the row slipway apply prints for a started rollout.
func applyRolloutRow(r domain.Rollout) []string {
	return []string{"Rollout", r.Model, r.Environment, "", fmt.Sprintf("started rollout %d: version %d → %d, %s (slipway rollout watch %d)",
		r.ID, r.Baseline, r.Candidate, phaseText(r.Phase), r.ID)}
}

func phaseText(p domain.RolloutPhase) string { return strings.ReplaceAll(string(p), "_", " ") }

// trafficText is the split in a few words: "v1 90 % · v2 10 %".
func trafficText(r domain.Rollout) string {
	t := r.Traffic
	var parts []string
	if t.BaselineRetired {
		parts = append(parts, fmt.Sprintf("v%d retired", r.Baseline))
	} else {
		parts = append(parts, fmt.Sprintf("v%d %d %%", r.Baseline, t.Baseline))
	}
	parts = append(parts, fmt.Sprintf("v%d %d %%", r.Candidate, t.Candidate))
	if t.ShadowPercent > 0 {
		parts = append(parts, "mirror "+measured(t.ShadowPercent)+" %")
	}
	if t.Sticky != nil {
		parts = append(parts, "sticky by "+t.Sticky.String())
	}
	return strings.Join(parts, " · ")
}

// measured prints a judged value with four significant digits.
func measured(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }

func optNum(x *float64) string {
	if x == nil {
		return "-"
	}
	return measured(*x)
}

// reportSize is how much of a rollout's past a report shows.
type reportSize struct {
	verdicts, transitions int
}

var (
	reportFull  = reportSize{verdicts: 5, transitions: 8}
	reportWatch = reportSize{verdicts: 2, transitions: 3}
)

// rolloutReport is what `rollout status` prints, and what `watch`
// redraws on a terminal: the rollout, its plan with the current step,
// a traffic bar per version, each rule against its threshold, the
// verdict and its reason, and the verdicts recorded with their evidence.
func rolloutReport(st api.RolloutStatus, size reportSize) string {
	r := st.Rollout
	var b strings.Builder
	line := func(label, text string) {
		fmt.Fprintf(&b, "%-10s %s\n", label, cell(text))
	}
	line("rollout", fmt.Sprintf("%d: %s in %s, version %d → %d (%s), started by %s %s", r.ID, r.Model, r.Environment,
		r.Baseline, r.Candidate, r.Strategy, r.CreatedBy, ago(r.CreatedAt)))
	phase := phaseText(r.Phase)
	if !r.InEffect {
		phase += " (being put into effect)"
	}
	if r.Reason != "" {
		phase += " — " + r.Reason
	}
	line("phase", phase)
	if r.Step < len(st.Steps) {
		line("step", fmt.Sprintf("%d of %d: %s, since %s", r.Step+1, len(st.Steps), st.Steps[r.Step].Description, ago(r.StepStartedAt)))
	}

	// Traffic: a bar per version.
	const barWidth = 30
	t := r.Traffic
	base := fmt.Sprintf("v%d baseline ", r.Baseline)
	cand := fmt.Sprintf("v%d candidate", r.Candidate)
	if t.BaselineRetired {
		line("traffic", fmt.Sprintf("%s  %s  retired", base, bar(0, barWidth)))
	} else {
		line("traffic", fmt.Sprintf("%s  %s  %3d %%", base, bar(float64(t.Baseline), barWidth), t.Baseline))
	}
	line("", fmt.Sprintf("%s  %s  %3d %%", cand, bar(float64(t.Candidate), barWidth), t.Candidate))
	if t.ShadowPercent > 0 {
		line("", fmt.Sprintf("%s  %s  %s %% mirrored", cand, bar(t.ShadowPercent, barWidth), measured(t.ShadowPercent)))
	}
	if t.Sticky != nil {
		line("", "split sticky by "+t.Sticky.String())
	}

	// The plan, with the current step marked.
	for i, s := range st.Steps {
		mark := "  "
		switch {
		case i < r.Step || r.Phase == domain.RolloutSucceeded:
			mark = "✓ "
		case i == r.Step && r.Phase.Terminal():
			mark = "✗ "
		case i == r.Step:
			mark = "▶ "
		}
		label := ""
		if i == 0 {
			label = "plan"
		}
		line(label, fmt.Sprintf("%s%2d %s", mark, i+1, s.Description))
	}

	// The verdict: live when the judge is looking, else the last recorded.
	var rows [][]string
	switch {
	case st.Live != nil:
		v := st.Live.Verdict
		line("verdict", fmt.Sprintf("%s (run %d, %s traffic, %s): %s", strings.ToUpper(string(v.Outcome)), st.Live.Run, st.Live.Mode,
			st.Live.At.UTC().Format("15:04:05.000"), v.Reason))
		line("", fmt.Sprintf("candidate %s; baseline %s; %d requests needed each before a pass",
			requestsText(v.Candidate), requestsText(v.Baseline), st.Live.MinSamples))
		for _, c := range v.Checks {
			rows = append(rows, []string{strings.TrimSpace(c.Metric + " " + c.Kind), optNum(c.Candidate), optNum(c.Baseline),
				measured(c.Observed), measured(c.Threshold), samples(c.CandidateSamples, c.BaselineSamples), strings.ToUpper(string(c.Outcome))})
		}
	case len(r.Verdicts) > 0:
		v := r.Verdicts[len(r.Verdicts)-1]
		line("verdict", fmt.Sprintf("%s recorded at step %d (run %d) %s: %s", strings.ToUpper(string(v.Outcome)), v.Step+1, v.Run, ago(v.At), v.Reason))
		for _, e := range v.Evidence {
			rows = append(rows, []string{e.Rule, optNum(e.Candidate), optNum(e.Baseline), optNum(e.Observed), optNum(e.Threshold),
				samples(e.CandidateSamples, e.BaselineSamples), strings.ToUpper(string(e.Outcome))})
		}
	default:
		line("verdict", "none: nothing is judged at this step")
	}
	if len(rows) > 0 {
		b.WriteString("\n")
		_ = printTable(&b, table{header: []string{"RULE", "CANDIDATE", "BASELINE", "OBSERVED", "THRESHOLD", "SAMPLES", "OUTCOME"}, rows: rows})
	}

	if n := len(r.Verdicts); n > 0 && size.verdicts > 0 {
		fmt.Fprintf(&b, "\nrecorded verdicts (%d, newest last)\n", n)
		for _, v := range r.Verdicts[max(0, n-size.verdicts):] {
			fmt.Fprintf(&b, "  %s\n", cell(verdictLine(v)))
		}
	}
	if len(r.Approvals) > 0 {
		b.WriteString("\napprovals\n")
		for _, a := range r.Approvals {
			verb := "approved"
			if !a.Approve {
				verb = "rejected"
			}
			s := fmt.Sprintf("%s %s (%s) step %d %s", a.By, verb, a.Role, a.Step+1, ago(a.At))
			if a.Comment != "" {
				s += ": " + a.Comment
			}
			fmt.Fprintf(&b, "  %s\n", cell(s))
		}
	}
	if n := len(r.History); n > 0 && size.transitions > 0 {
		fmt.Fprintf(&b, "\nhistory (last %d of %d)\n", min(n, size.transitions), n)
		for _, h := range r.History[max(0, n-size.transitions):] {
			fmt.Fprintf(&b, "  %s\n", cell(transitionLine(h)))
		}
	}
	return b.String()
}

// requestsText is the traffic a verdict rests on: "40 requests, 1 error".
func requestsText(v analysis.VersionTotal) string {
	return plural(v.Requests, "request") + ", " + plural(v.Errors, "error")
}

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

// bar draws pct of width cells.
func bar(pct float64, width int) string {
	n := int(math.Floor(pct / 100 * float64(width)))
	if pct > 0 && n == 0 {
		n = 1 // a version that takes any traffic shows
	}
	n = min(max(n, 0), width)
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func samples(c, b uint64) string {
	if b == 0 {
		return strconv.FormatUint(c, 10)
	}
	return strconv.FormatUint(c, 10) + "/" + strconv.FormatUint(b, 10)
}

// verdictLine is a recorded verdict with its evidence, on one line.
func verdictLine(v domain.RolloutVerdict) string {
	s := fmt.Sprintf("%s step %d run %d: %s", ago(v.At), v.Step+1, v.Run, strings.ToUpper(string(v.Outcome)))
	if v.Reason != "" {
		s += " — " + v.Reason
	}
	if v.CandidateRequests > 0 || v.BaselineRequests > 0 {
		s += fmt.Sprintf(" (candidate %d requests, baseline %d)", v.CandidateRequests, v.BaselineRequests)
	}
	if len(v.Evidence) > 0 {
		ev := make([]string, len(v.Evidence))
		for i, e := range v.Evidence {
			ev[i] = evidenceText(e)
		}
		s += "; evidence: " + strings.Join(ev, "; ")
	}
	return s
}

// evidenceText is one check as the judge saw it: "error_rate max 0.3 vs
// 0.02 (candidate 0.3, baseline 0.01) FAIL".
func evidenceText(e domain.RolloutEvidence) string {
	s := e.Rule
	if e.Observed != nil || e.Threshold != nil {
		s += " " + optNum(e.Observed) + " vs " + optNum(e.Threshold)
	}
	var vs []string
	if e.Candidate != nil {
		vs = append(vs, "candidate "+measured(*e.Candidate))
	}
	if e.Baseline != nil {
		vs = append(vs, "baseline "+measured(*e.Baseline))
	}
	if len(vs) > 0 {
		s += " (" + strings.Join(vs, ", ") + ")"
	}
	if e.Rule == "smoke" && e.Detail != "" {
		s += " " + e.Detail
	}
	return s + " " + strings.ToUpper(string(e.Outcome))
}

// transitionLine is one move of the state machine.
func transitionLine(h domain.RolloutTransition) string {
	s := fmt.Sprintf("%s %s → %s (%s) at step %d", ago(h.At), h.From, h.To, h.Event, h.Step+1)
	if h.By != "" {
		s += " by " + h.By
	}
	if h.Reason != "" {
		s += ": " + h.Reason
	}
	return s
}

// rolloutEnd is the final line of a rollout that has ended, and the
// error a command returns when it did not succeed.
func rolloutEnd(r domain.Rollout) (string, error) {
	if r.Phase == domain.RolloutSucceeded {
		return fmt.Sprintf("rollout %d succeeded: version %d serves %s in %s", r.ID, r.Candidate, r.Model, r.Environment), nil
	}
	s := fmt.Sprintf("rollout %d ended %s: version %d serves %s in %s again", r.ID, phaseText(r.Phase), r.Baseline, r.Model, r.Environment)
	if r.Reason != "" {
		s += " — " + r.Reason
	}
	return s, fmt.Errorf("rollout %d ended %s, not succeeded", r.ID, phaseText(r.Phase))
}
