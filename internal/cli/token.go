package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens (admin)"}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func tokenTable(ts ...domain.Token) func() table {
	return func() table {
		t := table{header: []string{"NAME", "ROLE", "CREATED BY", "CREATED", "REVOKED"}}
		for _, tk := range ts {
			rev := ""
			if tk.RevokedAt != nil {
				rev = ago(*tk.RevokedAt)
			}
			t.rows = append(t.rows, []string{tk.Name, string(tk.Role), tk.CreatedBy, ago(tk.CreatedAt), rev})
		}
		return t
	}
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE",
		Short: "Mint a token; its secret is printed once and never again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := domain.ParseRole(role)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), name, r)
			if err != nil {
				return err
			}
			if g.output == "table" || g.output == "" {
				fmt.Fprintf(g.stderr, "token %q (role %s) created; store it now, it cannot be shown again:\n", t.Name, t.Role)
				fmt.Fprintln(g.stdout, t.Secret)
				return nil
			}
			return g.emit(t, nil)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "token name (who or what uses it)")
	cmd.Flags().StringVar(&role, "role", "", "viewer, author, approver, deployer or admin")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("role")
	g.addOutput(cmd)
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListTokens(cmd.Context(), p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, tokenTable(l.Items...))
		},
	}
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token; every later call with it fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(t, tokenTable(t))
		},
	}
	g.addOutput(cmd)
	return cmd
}
