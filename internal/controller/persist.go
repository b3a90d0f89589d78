package controller

import (
	"context"
	"fmt"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/notify"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

// save stores decision d over prev with compare-and-swap on prev's
// revision, with an audit entry and a webhook event per transition, all in
// one transaction: either the new state and everything it announces are
// stored, or nothing is.
func (c *Controller) save(ctx context.Context, prev domain.Rollout, d rollout.Decision) (domain.Rollout, error) {
	var stored domain.Rollout
	err := c.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if stored, err = tx.UpdateRollout(ctx, d.Rollout, prev.Revision); err != nil {
			return err
		}
		for _, n := range d.Notifications {
			if err := c.announce(ctx, tx, stored, n); err != nil {
				return err
			}
		}
		return nil
	})
	return stored, err
}

// subject names a rollout in the audit log and in events.
func subject(r domain.Rollout) string {
	return fmt.Sprintf("model/%s/rollout/%d", r.Model, r.ID)
}

// Event is a rollout event's payload for webhooks.
type Event struct {
	Rollout     int64                  `json:"rollout"`
	Model       string                 `json:"model"`
	Environment string                 `json:"environment"`
	Baseline    int                    `json:"baseline"`
	Candidate   int                    `json:"candidate"`
	Event       string                 `json:"event"`
	From        domain.RolloutPhase    `json:"from"`
	To          domain.RolloutPhase    `json:"to"`
	Step        int                    `json:"step"`
	By          string                 `json:"by,omitempty"`
	Reason      string                 `json:"reason,omitempty"`
	Traffic     domain.RolloutTraffic  `json:"traffic"`
	Verdict     *domain.RolloutVerdict `json:"verdict,omitempty"`
}

// announce records transition n of r in the audit log and the webhook
// outbox.
func (c *Controller) announce(ctx context.Context, tx store.Tx, r domain.Rollout, n rollout.Notification) error {
	actor := n.By
	if actor == "" {
		actor = actorName(r.ID)
	}
	ev := Event{
		Rollout: r.ID, Model: r.Model, Environment: r.Environment, Baseline: r.Baseline, Candidate: r.Candidate,
		Event: string(n.Event), From: n.From, To: n.To, Step: n.Step, By: n.By, Reason: n.Reason,
		Traffic: r.Traffic, Verdict: n.Verdict,
	}
	if _, err := tx.AppendAudit(ctx, audit.Entry{
		Time: n.At, Actor: actor, Action: n.Type, Subject: subject(r),
		Before: audit.Document(map[string]any{"phase": n.From}),
		After:  audit.Document(ev),
	}); err != nil {
		return err
	}
	return notify.Enqueue(ctx, tx, notify.Event{ID: n.ID, Type: n.Type, Subject: subject(r), Time: n.At, Data: ev})
}
