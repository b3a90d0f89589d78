package cli

import (
	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Create and inspect models"}
	cmd.AddCommand(newModelCreateCmd(g), newModelListCmd(g), newModelGetCmd(g))
	return cmd
}

func modelTable(ms ...domain.Model) func() table {
	return func() table {
		t := table{header: []string{"NAME", "OWNER", "TAGS", "CREATED", "DESCRIPTION"}}
		for _, m := range ms {
			t.rows = append(t.rows, []string{m.Name, m.Owner, kv(m.Tags), ago(m.CreatedAt), oneLine(m.Description)})
		}
		return t
	}
}

// oneLine shortens free text for a table cell: one line, at most 60
// characters (cut on a character, never inside one).
func oneLine(s string) string {
	s = cell(s)
	if r := []rune(s); len(r) > 60 {
		return string(r[:57]) + "..."
	}
	return s
}

func newModelCreateCmd(g *globals) *cobra.Command {
	var req api.ModelRequest
	var tags []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Register a model family",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			if req.Tags, err = parseKV("tag", tags); err != nil {
				return err
			}
			m, err := c.CreateModel(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.emit(m, modelTable(m))
		},
	}
	cmd.Flags().StringVar(&req.Description, "description", "", "what the model does")
	cmd.Flags().StringVar(&req.Owner, "owner", "", "team or person responsible")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag as key=value (repeatable)")
	g.addOutput(cmd)
	return cmd
}

func newModelListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List models",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListModels(cmd.Context(), p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, modelTable(l.Items...))
		},
	}
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func pageFlags(cmd *cobra.Command, p *apiclient.Page) {
	cmd.Flags().IntVar(&p.Limit, "limit", 100, "page size (1-1000)")
	cmd.Flags().StringVar(&p.Cursor, "cursor", "", "continue a listing from this cursor")
}

func newModelGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.GetModel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(m, modelTable(m))
		},
	}
	g.addOutput(cmd)
	return cmd
}
