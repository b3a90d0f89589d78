package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newDatasetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Push and inspect evaluation datasets"}
	cmd.AddCommand(newDatasetPushCmd(g), newDatasetListCmd(g), newDatasetGetCmd(g))
	return cmd
}

func datasetTable(ds ...domain.Dataset) func() table {
	return func() table {
		t := table{header: []string{"DATASET", "TASK", "ROWS", "COLUMNS", "LABEL", "SEGMENTS", "SENSITIVE", "DIGEST", "CREATED BY", "CREATED"}}
		for _, d := range ds {
			t.rows = append(t.rows, []string{d.Ref(), string(d.Task), strconv.Itoa(d.Rows), strconv.Itoa(len(d.Columns)), d.Label,
				strings.Join(d.Segments, ","), d.Sensitive, shortDigest(d.Digest), d.CreatedBy, ago(d.CreatedAt)})
		}
		return t
	}
}

// formatOf guesses a dataset's format from its file name.
func formatOf(path, flag string) (string, error) {
	if flag != "" {
		if flag != "csv" && flag != "jsonl" {
			return "", fmt.Errorf("--format %q is not csv or jsonl", flag)
		}
		return flag, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv", nil
	case ".jsonl", ".ndjson":
		return "jsonl", nil
	}
	return "", fmt.Errorf("cannot tell the format of %s from its name; pass --format csv or --format jsonl", path)
}

func newDatasetPushCmd(g *globals) *cobra.Command {
	var roles apiclient.DatasetRoles
	var format string
	cmd := &cobra.Command{
		Use:   "push NAME FILE --label COL [--segment COL]... [--sensitive COL] [--task classification|regression]",
		Short: "Store an evaluation dataset (CSV with a header, or JSON Lines) as the next version of NAME",
		Long: `Store an evaluation dataset (CSV with a header, or JSON Lines) as the next
version of NAME: NAME@1, NAME@2 … The server keeps the file by its sha256
digest with the schema it infers (column names, types, missing values) and
the roles you give: the label column (required; 0/1 or true/false labels make
a classification dataset, other numbers a regression one — whole numbers
with 3 to 20 distinct values look like a multi-class label, which slipway
does not evaluate, and are refused unless --task regression says they are
quantities), segment columns
(metrics per value) and a sensitive column (fairness gaps between its
groups). A missing, NaN or non-numeric label is refused with its row.

Versions are immutable. Pushing the same bytes with the same roles again
stores nothing and prints the version that already holds them.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := formatOf(args[1], format)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			file, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer file.Close()
			fi, err := file.Stat()
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", args[1])
			}
			res, err := c.PushDataset(cmd.Context(), args[0], f, roles, fi.Size(), file)
			if err != nil {
				return err
			}
			if !res.Created {
				fmt.Fprintf(g.stderr, "dataset %s already holds this content (%s) with these roles; nothing new was stored\n", res.Dataset.Ref(), res.Dataset.Digest)
			}
			return g.emit(res, datasetTable(res.Dataset))
		},
	}
	cmd.Flags().StringVar(&roles.Label, "label", "", "the label column (required)")
	cmd.Flags().StringArrayVar(&roles.Segments, "segment", nil, "a column to report metrics per value of (repeatable)")
	cmd.Flags().StringVar(&roles.Sensitive, "sensitive", "", "the column to compute fairness gaps over")
	cmd.Flags().StringVar(&roles.Task, "task", "", "classification (0/1 labels) or regression; inferred from the labels when left out")
	cmd.Flags().StringVar(&format, "format", "", "csv or jsonl (default: from the file's extension)")
	_ = cmd.MarkFlagRequired("label")
	g.addOutput(cmd)
	return cmd
}

func newDatasetListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List datasets, or the versions of one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			l, err := c.ListDatasets(cmd.Context(), name, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, datasetTable(l.Items...))
		},
	}
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func newDatasetGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME[@N]",
		Short: "Show a dataset version (the latest without @N) and its columns",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.GetDataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(d, func() table {
				t := table{header: []string{"DATASET", "COLUMN", "TYPE", "MISSING", "ROLE"}}
				for _, col := range d.Columns {
					role := ""
					switch {
					case col.Name == d.Label:
						role = "label"
					case col.Name == d.Sensitive:
						role = "sensitive"
					}
					for _, s := range d.Segments {
						if s == col.Name {
							role = strings.TrimPrefix(role+",segment", ",")
						}
					}
					t.rows = append(t.rows, []string{d.Ref(), col.Name, col.Type, strconv.Itoa(col.Missing), role})
				}
				return t
			})
		},
	}
	g.addOutput(cmd)
	return cmd
}
