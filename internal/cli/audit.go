package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/apiclient"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the tamper-evident audit log"}
	cmd.AddCommand(newAuditListCmd(g), newAuditVerifyCmd(g))
	return cmd
}

func newAuditListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	var subject, actor string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListAudit(cmd.Context(), subject, actor, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, func() table {
				t := table{header: []string{"SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "BEFORE", "AFTER"}}
				for _, e := range l.Items {
					t.rows = append(t.rows, []string{strconv.FormatInt(e.Seq, 10), ago(e.Time), e.Actor, e.Action, e.Subject, short(e.Before), short(e.After)})
				}
				return t
			})
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "only entries about this subject and what is under it (e.g. model/fraud)")
	cmd.Flags().StringVar(&actor, "actor", "", "only entries by this token name")
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func short(b []byte) string {
	s := string(b)
	if s == "null" {
		return "-"
	}
	if len(s) > 48 {
		return s[:45] + "..."
	}
	return s
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash the whole audit chain and name the first entry that was edited, deleted or reordered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" || g.output == "yaml" {
				if err := g.emit(r, nil); err != nil {
					return err
				}
			} else if r.OK {
				fmt.Fprintf(g.stdout, "audit log intact: %d entries, head %s\n", r.Entries, r.Head)
			}
			if !r.OK {
				return fmt.Errorf("audit log broken at entry %d: %s", r.FirstBadIndex, r.Reason)
			}
			return nil
		},
	}
	g.addOutput(cmd)
	return cmd
}
