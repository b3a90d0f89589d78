package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newWebhookCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Send slipway's events to HTTP endpoints as signed CloudEvents (admin)",
		Long: `A webhook POSTs every event it subscribes to (promotion.requested,
promotion.rejected, promotion.approved, promotion.completed,
promotion.cancelled; a family such as promotion.*; or *) to a URL as a
CloudEvents 1.0 JSON body, signed with
HMAC-SHA256 in the X-Slipway-Signature header. Failed deliveries are retried
with backoff. See docs/webhooks.md for how a receiver verifies a delivery.`,
	}
	cmd.AddCommand(newWebhookAddCmd(g), newWebhookListCmd(g), newWebhookRemoveCmd(g), newWebhookTestCmd(g), newWebhookDeliveriesCmd(g))
	return cmd
}

func webhookTable(ws ...domain.Webhook) func() table {
	return func() table {
		t := table{header: []string{"ID", "URL", "EVENTS", "CREATED BY", "CREATED"}}
		for _, w := range ws {
			t.rows = append(t.rows, []string{w.ID, w.URL, strings.Join(w.Events, ","), w.CreatedBy, ago(w.CreatedAt)})
		}
		return t
	}
}

func deliveryTable(ds ...domain.Delivery) func() table {
	return func() table {
		t := table{header: []string{"ID", "WEBHOOK", "EVENT", "STATUS", "ATTEMPTS", "CODE", "NEXT ATTEMPT", "LAST ERROR"}}
		for _, d := range ds {
			code := ""
			if d.LastStatusCode != 0 {
				code = strconv.Itoa(d.LastStatusCode)
			}
			t.rows = append(t.rows, []string{strconv.FormatInt(d.ID, 10), d.WebhookID, d.EventType, string(d.Status),
				strconv.Itoa(d.Attempts), code, ago(d.NextAttemptAt), d.LastError})
		}
		return t
	}
}

func newWebhookAddCmd(g *globals) *cobra.Command {
	var events []string
	var secretFile string
	cmd := &cobra.Command{
		Use:   "add URL --event TYPE [--event TYPE ...] [--secret-file FILE]",
		Short: "Subscribe a URL to events; the signing secret is generated and printed once unless --secret-file gives it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.WebhookRequest{URL: args[0]}
			for _, e := range events {
				for _, p := range strings.Split(e, ",") {
					if p = strings.TrimSpace(p); p != "" {
						req.Events = append(req.Events, p)
					}
				}
			}
			if secretFile != "" {
				s, err := readSecretFile(secretFile)
				if err != nil {
					return err
				}
				req.Secret = s
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.AddWebhook(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.output != "table" && g.output != "" {
				return g.emit(w, nil)
			}
			if secretFile != "" {
				return g.emit(w, webhookTable(w.Webhook))
			}
			fmt.Fprintf(g.stderr, "webhook %s created for %s; its signing secret, shown this once:\n", w.ID, strings.Join(w.Events, ", "))
			fmt.Fprintln(g.stdout, w.Secret)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&events, "event", nil, "event type, family (promotion.*) or *; repeat or separate with commas")
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the signing secret (16 to 512 printable ASCII characters; one trailing newline is ignored)")
	_ = cmd.MarkFlagRequired("event")
	g.addOutput(cmd)
	return cmd
}

// readSecretFile reads a secret, dropping one trailing line ending, so
// `openssl rand -hex 32 > f` works as is. The server judges the rest.
func readSecretFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--secret-file: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > 4096 {
		return "", fmt.Errorf("--secret-file %s must be a regular file of at most 4096 bytes", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--secret-file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("--secret-file %s is empty", path)
	}
	return string(b), nil
}

func newWebhookListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List webhooks (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListWebhooks(cmd.Context(), p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, webhookTable(l.Items...))
		},
	}
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func newWebhookRemoveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Delete a webhook; its pending deliveries are dropped unsent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.RemoveWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(w, webhookTable(w))
		},
	}
	g.addOutput(cmd)
	return cmd
}

func newWebhookTestCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "test ID",
		Short: "Send a webhook.ping event to one webhook and wait for its first attempt",
		Long: `Queues a webhook.ping event for the webhook, whatever events it subscribes
to, and waits (up to --wait) until the first attempt to deliver it is over.
It fails when that attempt failed, naming why; a failure the dispatcher will
retry stays queued. --wait 0 only queues it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait < 0 {
				return fmt.Errorf("--wait %s must not be negative", wait)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.TestWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if wait > 0 {
				if d, err = waitFirstAttempt(cmd.Context(), c, d, wait); err != nil {
					return err
				}
			}
			if err := g.emit(d, deliveryTable(d)); err != nil {
				return err
			}
			switch {
			case wait == 0 || d.Status == domain.DeliveryDelivered:
				return nil
			case d.Status == domain.DeliveryFailed:
				return fmt.Errorf("ping of webhook %s failed: %s", d.WebhookID, d.LastError)
			case d.LastError != "":
				return fmt.Errorf("ping of webhook %s not delivered yet (%s); it will be retried at %s", d.WebhookID, d.LastError, ago(d.NextAttemptAt))
			default:
				return fmt.Errorf("ping of webhook %s was not attempted within %s; follow it with slipway webhook deliveries %s", d.WebhookID, wait, d.WebhookID)
			}
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the first attempt (0: do not wait)")
	g.addOutput(cmd)
	return cmd
}

// waitFirstAttempt polls a delivery until its first attempt has recorded
// an outcome (delivered, failed, or an error to retry) or wait passes.
func waitFirstAttempt(ctx context.Context, c *apiclient.Client, d domain.Delivery, wait time.Duration) (domain.Delivery, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	pause := 50 * time.Millisecond
	for d.Status == domain.DeliveryPending && d.LastError == "" {
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-deadline.C:
			return d, nil
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
		next, err := c.GetDelivery(ctx, d.ID)
		if errors.Is(err, domain.ErrNotFound) {
			return d, fmt.Errorf("delivery %d is gone: its webhook was removed", d.ID)
		}
		if err != nil {
			return d, err
		}
		d = next
	}
	return d, nil
}

func newWebhookDeliveriesCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	var status string
	cmd := &cobra.Command{
		Use:   "deliveries [ID]",
		Short: "List deliveries, newest first, of one webhook or all: status, attempts, last answer and error, next attempt",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if status != "" {
				if _, err := domain.ParseDeliveryStatus(status); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			l, err := c.ListDeliveries(cmd.Context(), id, status, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, deliveryTable(l.Items...))
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only deliveries in this status: pending, delivered or failed")
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}
