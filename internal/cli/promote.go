package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

// maxApplyFile bounds what apply reads; the server caps it too.
const maxApplyFile = 1 << 20

func newApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a declarative document (kind: GatePolicy or Rollout)",
		Long: `Apply a YAML document kept in git. kind: GatePolicy sets the rules a
version must pass, and the approvals it needs, to be promoted into one
environment of one model; every apply of a changed policy makes a new
revision (audited), re-applying the same policy changes nothing, and a new
revision cancels the promotions still waiting under the old one. A policy
with an unknown metric, a malformed rule, a dataset that does not exist or
a YAML error is refused with the file, line and reason. Needs the admin
role. kind: Rollout starts a rollout, as 'slipway rollout start -f' does
(deployer role). -f - reads standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE is required (- for standard input)")
			}
			var r io.Reader = cmd.InOrStdin()
			name := "stdin"
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				r, name = f, file
			}
			doc, err := io.ReadAll(io.LimitReader(r, maxApplyFile+1))
			if err != nil {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			if len(doc) > maxApplyFile {
				return fmt.Errorf("%s is larger than %d bytes", name, maxApplyFile)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), name, doc)
			if err != nil {
				return err
			}
			err = g.emit(res, func() table {
				t := table{header: []string{"KIND", "MODEL", "ENVIRONMENT", "REVISION", "RESULT"}}
				if p := res.GatePolicy; p != nil {
					result := "applied"
					if p.Unchanged {
						result = "unchanged"
					}
					if len(p.Cancelled) > 0 {
						result += fmt.Sprintf("; cancelled pending promotions %s", joinIDs(p.Cancelled))
					}
					t.rows = append(t.rows, []string{res.Kind, p.Policy.Model, p.Policy.Environment, strconv.Itoa(p.Policy.Revision), result})
				}
				if r := res.Rollout; r != nil {
					t.rows = append(t.rows, applyRolloutRow(*r))
				}
				return t
			})
			if r := res.Rollout; err == nil && r != nil && r.Phase.Terminal() {
				// Its first steps ended it: a script must not read that as
				// started.
				return fmt.Errorf("rollout %d ended as soon as it started: %s: %s", r.ID, phaseText(r.Phase), r.Reason)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the YAML document to apply (- for standard input)")
	g.addOutput(cmd)
	return cmd
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Show gate policies (set them with slipway apply -f)"}
	get := &cobra.Command{
		Use:   "get MODEL --env ENV",
		Short: "Show the gate policy in force for a model and environment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, _ := cmd.Flags().GetString("env")
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.GetPolicy(cmd.Context(), args[0], env)
			if err != nil {
				return err
			}
			return g.emit(p, policyTable(p))
		},
	}
	get.Flags().String("env", "production", "the environment")
	g.addOutput(get)
	list := &cobra.Command{
		Use:   "list MODEL",
		Short: "List a model's gate policies in force",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.ListPolicies(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(ps, policyTable(ps...))
		},
	}
	g.addOutput(list)
	cmd.AddCommand(get, list)
	return cmd
}

func policyTable(ps ...domain.GatePolicy) func() table {
	return func() table {
		t := table{header: []string{"MODEL", "ENVIRONMENT", "REVISION", "DATASET", "RULE", "APPROVALS", "APPLIED BY", "APPLIED"}}
		for _, p := range ps {
			approvals := "none"
			if p.Approvals.Required > 0 {
				approvals = fmt.Sprintf("%d × %s", p.Approvals.Required, p.Approvals.Role)
			}
			rules := []string{"(none)"}
			if len(p.Rules) > 0 {
				rules = rules[:0]
				for _, r := range p.Rules {
					rules = append(rules, ruleText(r))
				}
			}
			for i, r := range rules {
				if i == 0 {
					t.rows = append(t.rows, []string{p.Model, p.Environment, strconv.Itoa(p.Revision), p.Dataset, r, approvals, p.CreatedBy, ago(p.CreatedAt)})
				} else {
					t.rows = append(t.rows, []string{"", "", "", "", r, "", "", ""})
				}
			}
		}
		return t
	}
}

func ruleText(r domain.GateRule) string {
	name := r.Metric
	if r.Group != "" {
		name += "[" + r.Group + "]"
	}
	var parts []string
	add := func(op string, v *float64) {
		if v != nil {
			parts = append(parts, op+" "+strconv.FormatFloat(*v, 'g', -1, 64))
		}
	}
	add("≥", r.Min)
	add("≤", r.Max)
	add("≥ champion +", r.MinVsChampion)
	add("≤ champion +", r.MaxVsChampion)
	return name + " " + strings.Join(parts, ", ")
}

func newPromoteCmd(g *globals) *cobra.Command {
	var to, reason string
	var breakGlass bool
	cmd := &cobra.Command{
		Use:   "promote MODEL VERSION|@alias --to ENV",
		Short: "Ask to move a version into an environment through its gates",
		Long: `Ask to move a version into an environment. The server judges the
environment's gate policy: it evaluates the version on the policy's dataset
(reusing an evaluation of the same version on the same dataset version), and
the champion too when a rule compares with it, and records the promotion
with every rule's observed value, threshold and verdict.

A failing rule rejects it (the table says which, and the command exits 1).
Passing rules with approvals required leave it pending for
'slipway approve ID'. Otherwise, or once approved, the environment's alias
(staging; production and champion) moves to the version and its lifecycle
state is set, atomically. Every environment but dev needs a policy.

--break-glass --reason TEXT (admin only) skips gates and approvals; it is
audited as such.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to ENV is required")
			}
			if breakGlass && strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--break-glass needs --reason saying why the gates are skipped")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.Promote(cmd.Context(), args[0], api.PromoteRequest{Version: api.VersionRef(args[1]), To: to, BreakGlass: breakGlass, Reason: reason})
			if err != nil {
				return err
			}
			return g.emitPromotion(p)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the environment to enter (dev, staging, production)")
	cmd.Flags().BoolVar(&breakGlass, "break-glass", false, "skip gates and approvals (admin only; needs --reason)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the gates are skipped (with --break-glass)")
	g.addOutput(cmd)
	return cmd
}

// emitPromotion prints a promotion and fails the command when its gates
// rejected it, so scripts stop there.
func (g *globals) emitPromotion(p domain.Promotion) error {
	if err := g.emitReport(p, nil); err != nil {
		return err
	}
	if p.State == domain.PromotionRejected {
		return fmt.Errorf("promotion %d of version %d to %s was rejected: %s", p.ID, p.Version, p.Environment, p.Reason)
	}
	return nil
}

// emitReport prints a promotion: in table mode the gate table (when there
// are rules), then a summary line and any extra lines; otherwise the
// promotion as JSON or YAML.
func (g *globals) emitReport(p domain.Promotion, extra []string) error {
	if g.output != "table" && g.output != "" {
		return g.emit(p, nil)
	}
	if len(p.Results) > 0 {
		if err := printTable(g.stdout, gateTable(p)); err != nil {
			return err
		}
		fmt.Fprintln(g.stdout)
	}
	fmt.Fprintln(g.stdout, cell(promotionSummary(p)))
	for _, l := range extra {
		fmt.Fprintln(g.stdout, cell(l))
	}
	return nil
}

// gateTable is one row per rule judged.
func gateTable(p domain.Promotion) table {
	t := table{header: []string{"RULE", "CHECK", "OBSERVED", "CHAMPION", "THRESHOLD", "VERDICT", "WHY"}}
	for _, r := range p.Results {
		t.rows = append(t.rows, []string{ruleNameOf(r), r.Kind, fmtOpt(r.Observed), fmtOpt(r.Champion),
			strconv.FormatFloat(r.Threshold, 'g', 6, 64), strings.ToUpper(string(r.Verdict)), r.Reason})
	}
	return t
}

// promotionSummary says where a promotion stands, in one line.
func promotionSummary(p domain.Promotion) string {
	summary := fmt.Sprintf("promotion %d: version %d → %s: %s", p.ID, p.Version, p.Environment, p.State)
	switch {
	case p.State == domain.PromotionPending:
		summary += fmt.Sprintf(" (%d of %d approvals by %s; slipway approve %d)", p.Approvals(), p.Required, p.Role, p.ID)
	case p.State == domain.PromotionCompleted && p.Previous != 0:
		summary += fmt.Sprintf(" (was version %d)", p.Previous)
	}
	if p.BreakGlass {
		summary += " — BREAK GLASS: " + p.Reason
	} else if p.Reason != "" && p.State != domain.PromotionCompleted {
		summary += " — " + p.Reason
	}
	return summary
}

func ruleNameOf(r domain.RuleResult) string {
	if r.Group != "" {
		return r.Metric + "[" + r.Group + "]"
	}
	return r.Metric
}

func fmtOpt(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'g', 6, 64)
}

func newDecideCmd(g *globals, approve bool) *cobra.Command {
	a := decisionCmd(approve, "Approve a pending promotion (not your own version or request)", "Reject a pending promotion, saying why")
	a.noun = "promotion"
	a.long = `. The server enforces separation of duties: you need
the policy's approval role, may not have pushed the version or requested
the promotion, and may decide once; N required approvals need N different
people. The last approval completes the promotion.`
	a.act = func(ctx context.Context, c *apiclient.Client, id int64, comment string) error {
		p, err := c.Decide(ctx, id, approve, comment)
		if err != nil {
			return err
		}
		return g.emitReport(p, nil)
	}
	return g.newActionCmd(a)
}

func newPromotionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "promotion", Short: "Show promotions: who held each environment, when and why"}
	var f apiclient.PromotionFilter
	var p apiclient.Page
	list := &cobra.Command{
		Use:   "list [MODEL] [--env ENV] [--state STATE]",
		Short: "List promotions, newest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				f.Model = args[0]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListPromotions(cmd.Context(), f, p)
			if err != nil {
				return err
			}
			if err := g.emit(l, func() table {
				t := table{header: []string{"ID", "MODEL", "VERSION", "ENVIRONMENT", "STATE", "REQUESTED BY", "APPROVED BY", "PREVIOUS", "UPDATED", "REASON"}}
				for _, pr := range l.Items {
					var by []string
					for _, d := range pr.Decisions {
						if d.Approve {
							by = append(by, d.By)
						}
					}
					prev := ""
					if pr.Previous != 0 {
						prev = strconv.Itoa(pr.Previous)
					}
					reason := pr.Reason
					if pr.BreakGlass {
						reason = "BREAK GLASS: " + reason
					}
					t.rows = append(t.rows, []string{strconv.FormatInt(pr.ID, 10), pr.Model, strconv.Itoa(pr.Version), pr.Environment,
						string(pr.State), pr.RequestedBy, strings.Join(by, ", "), prev, ago(pr.UpdatedAt), oneLine(reason)})
				}
				return t
			}); err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return nil
		},
	}
	list.Flags().StringVar(&f.Environment, "env", "", "only promotions into this environment")
	list.Flags().StringVar(&f.State, "state", "", "only promotions in this state (pending, rejected, completed, cancelled)")
	list.Flags().IntVar(&p.Limit, "limit", 0, "page size (default 100)")
	list.Flags().StringVar(&p.Cursor, "cursor", "", "the next cursor of the previous page")
	g.addOutput(list)
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one promotion with its gate report and decisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := recordID("promotion", args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			pr, err := c.GetPromotion(cmd.Context(), id)
			if err != nil {
				return err
			}
			var lines []string
			for _, d := range pr.Decisions {
				verb := "approved"
				if !d.Approve {
					verb = "rejected"
				}
				lines = append(lines, fmt.Sprintf("%s %s %s: %s", d.By, verb, ago(d.At), d.Comment))
			}
			return g.emitReport(pr, lines)
		},
	}
	g.addOutput(get)
	cmd.AddCommand(list, get)
	return cmd
}
