package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newAliasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "alias", Short: "Point movable names (champion, production …) at versions"}
	cmd.AddCommand(newAliasSetCmd(g), newAliasGetCmd(g), newAliasListCmd(g), newAliasRmCmd(g))
	return cmd
}

func aliasTable(as ...domain.Alias) func() table {
	return func() table {
		t := table{header: []string{"MODEL", "ALIAS", "VERSION", "UPDATED BY", "UPDATED"}}
		for _, a := range as {
			t.rows = append(t.rows, []string{a.Model, a.Name, strconv.Itoa(a.Version), a.UpdatedBy, ago(a.UpdatedAt)})
		}
		return t
	}
}

func newAliasSetCmd(g *globals) *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "set MODEL ALIAS VERSION|@alias",
		Short: "Point an alias at a version, atomically",
		Long: `Point an alias at a version. With --expect N the move happens only if the
alias points at version N now (--expect 0: only if it does not exist yet);
otherwise it fails with a conflict and nothing changes.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := optionalInt("expect", expect)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.SetAlias(cmd.Context(), args[0], args[1], args[2], exp)
			if err != nil {
				return err
			}
			return g.emit(a, aliasTable(a))
		},
	}
	cmd.Flags().StringVar(&expect, "expect", "", "only move if the alias points at this version now (0: must not exist)")
	g.addOutput(cmd)
	return cmd
}

func newAliasGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get MODEL ALIAS",
		Short: "Show which version an alias points at",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.GetAlias(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return g.emit(a, aliasTable(a))
		},
	}
	g.addOutput(cmd)
	return cmd
}

func newAliasListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "list MODEL",
		Short: "List a model's aliases",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListAliases(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, aliasTable(l.Items...))
		},
	}
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func newAliasRmCmd(g *globals) *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "rm MODEL ALIAS",
		Short: "Remove an alias",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := optionalInt("expect", expect)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteAlias(cmd.Context(), args[0], args[1], exp); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed alias %s of model %s\n", args[1], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&expect, "expect", "", "only remove if the alias points at this version now")
	return cmd
}
