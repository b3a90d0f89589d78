package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

// metricOrder is the order metrics are printed in: the task's own, then
// any other, by name.
func metricOrder(task domain.Task, m map[string]float64) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range domain.EvaluationMetrics[task] {
		if _, ok := m[k]; ok {
			out = append(out, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

func evaluationTable(es ...domain.Evaluation) func() table {
	return func() table {
		t := table{header: []string{"ID", "MODEL", "VERSION", "DATASET", "STATUS", "ROWS", "HEADLINE", "STARTED", "BY"}}
		for _, e := range es {
			head := oneLine(e.Error)
			switch {
			case e.Status != domain.EvaluationSucceeded:
			case e.Task == domain.TaskClassification:
				head = fmt.Sprintf("roc_auc %s f1 %s", num(e.Metrics[domain.MetricROCAUC]), num(e.Metrics[domain.MetricF1]))
			default:
				head = fmt.Sprintf("rmse %s r2 %s", num(e.Metrics[domain.MetricRMSE]), num(e.Metrics[domain.MetricR2]))
			}
			t.rows = append(t.rows, []string{strconv.FormatInt(e.ID, 10), e.Model, strconv.Itoa(e.Version),
				e.Dataset + "@" + strconv.Itoa(e.DatasetVersion), string(e.Status), strconv.Itoa(e.Rows), head, ago(e.StartedAt), e.CreatedBy})
		}
		return t
	}
}

// printEvaluation prints an evaluation as a person reads it: its metrics
// (beside the baseline's, with the difference, when there is one), its
// segments and its fairness gaps.
func printEvaluation(w io.Writer, e domain.Evaluation, base *domain.Evaluation) error {
	fmt.Fprintf(w, "evaluation %d: model %s version %d on dataset %s@%d (%s), %d rows, %s\n",
		e.ID, e.Model, e.Version, e.Dataset, e.DatasetVersion, shortDigest(e.DatasetDigest), e.Rows, e.Status)
	if e.Status == domain.EvaluationFailed {
		fmt.Fprintf(w, "error: %s\n", e.Error)
		return nil
	}
	if e.Features != nil {
		fmt.Fprintf(w, "features: %d columns matched by %s\n", len(e.Features.Columns), e.Features.Rule)
	}
	t := table{header: []string{"METRIC", "VERSION " + strconv.Itoa(e.Version)}}
	if base != nil {
		t.header = append(t.header, "BASELINE (VERSION "+strconv.Itoa(base.Version)+")", "DIFFERENCE")
	}
	for _, k := range metricOrder(e.Task, e.Metrics) {
		row := []string{k, num(e.Metrics[k])}
		if base != nil {
			if b, ok := base.Metrics[k]; ok {
				row = append(row, num(b), fmt.Sprintf("%+.4f", e.Metrics[k]-b))
			}
		}
		t.rows = append(t.rows, row)
	}
	fmt.Fprintln(w)
	if err := printTable(w, t); err != nil {
		return err
	}
	if len(e.Segments) > 0 {
		keys := domain.EvaluationMetrics[e.Task]
		st := table{header: []string{"SEGMENT", "ROWS"}}
		var shown []string
		for _, k := range keys {
			if k == domain.MetricLatencyP50MS || k == domain.MetricLatencyP99MS || k == domain.MetricTPRGap || k == domain.MetricPositiveRateGap {
				continue
			}
			shown = append(shown, k)
			st.header = append(st.header, k)
		}
		for _, s := range e.Segments {
			row := []string{s.Column + "=" + s.Value, strconv.Itoa(s.Rows)}
			for _, k := range shown {
				if v, ok := s.Metrics[k]; ok {
					row = append(row, num(v))
				} else {
					row = append(row, "-")
				}
			}
			st.rows = append(st.rows, row)
		}
		fmt.Fprintln(w)
		if err := printTable(w, st); err != nil {
			return err
		}
	}
	if f := e.Fairness; f != nil {
		ft := table{header: []string{f.Column, "ROWS", "TPR", "POSITIVE RATE"}}
		for _, g := range f.Groups {
			tpr := "-"
			if g.TPR != nil {
				tpr = num(*g.TPR)
			}
			ft.rows = append(ft.rows, []string{g.Group, strconv.Itoa(g.Rows), tpr, num(g.PositiveRate)})
		}
		fmt.Fprintln(w)
		if err := printTable(w, ft); err != nil {
			return err
		}
		fmt.Fprintf(w, "largest gaps over %s: TPR %s, positive rate %s\n", f.Column, num(f.TPRGap), num(f.PositiveRateGap))
	}
	return nil
}

func newEvaluateCmd(g *globals) *cobra.Command {
	var dataset, against string
	cmd := &cobra.Command{
		Use:   "evaluate MODEL VERSION|@alias --dataset NAME[@N] [--against @champion]",
		Short: "Run a version over every row of a dataset through its runtime and record the metrics",
		Long: `Run a version over every row of a dataset, one prediction request per row,
through the version's own runtime, and record an immutable evaluation:
classification metrics (accuracy, precision, recall, F1, ROC-AUC, log loss,
Brier score, expected calibration error) or regression metrics (MAE, RMSE,
R²), single-row latency p50/p99, metrics per segment and fairness gaps over
the sensitive column.

With --against, that version (e.g. @champion) runs first over the same
dataset version, and the two are printed side by side.

Columns are matched to the model's features before any row runs; a
dataset whose columns do not match is refused, naming the missing and
extra columns, and nothing is recorded. The call waits for the last row.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataset == "" {
				return fmt.Errorf("--dataset NAME[@N] is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.Evaluate(cmd.Context(), args[0], args[1], dataset, against)
			if err != nil {
				return err
			}
			if g.output == "table" || g.output == "" {
				if err := printEvaluation(g.stdout, resp.Evaluation, resp.Baseline); err != nil {
					return err
				}
			} else if err := g.emit(resp, nil); err != nil {
				return err
			}
			if resp.Evaluation.Status != domain.EvaluationSucceeded {
				return fmt.Errorf("evaluation %d failed: %s", resp.Evaluation.ID, resp.Evaluation.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataset, "dataset", "", "the dataset: NAME (latest version) or NAME@N")
	cmd.Flags().StringVar(&against, "against", "", "a baseline version to evaluate first and compare with, e.g. @champion")
	g.addOutput(cmd)
	return cmd
}

func newEvaluationCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "evaluation", Short: "List and inspect recorded evaluations"}
	var p apiclient.Page
	var f apiclient.EvaluationFilter
	list := &cobra.Command{
		Use:   "list [--model M [--version N]] [--status running|succeeded|failed]",
		Short: "List evaluations, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListEvaluations(cmd.Context(), f, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, evaluationTable(l.Items...))
		},
	}
	list.Flags().StringVar(&f.Model, "model", "", "only this model's")
	list.Flags().IntVar(&f.Version, "version", 0, "only this version's (needs --model)")
	list.Flags().StringVar(&f.Status, "status", "", "only running, succeeded or failed ones")
	pageFlags(list, &p)
	g.addOutput(list)
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one evaluation with every metric",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return fmt.Errorf("evaluation ID %q must be a number from 1", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := c.GetEvaluation(cmd.Context(), id)
			if err != nil {
				return err
			}
			if g.output == "table" || g.output == "" {
				return printEvaluation(g.stdout, e, nil)
			}
			return g.emit(e, nil)
		},
	}
	g.addOutput(get)
	cmd.AddCommand(list, get)
	return cmd
}
