package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
)

// StartRollout starts the rollout a Rollout document describes; file
// names it in errors. supersede ends the model's active rollout in the
// environment first.
func (c *Client) StartRollout(ctx context.Context, file string, doc []byte, supersede bool) (domain.Rollout, error) {
	var out domain.Rollout
	q := url.Values{"file": {file}}
	if supersede {
		q.Set("supersede", "true")
	}
	return out, c.postYAML(ctx, "/api/v1/rollouts", q, doc, &out)
}

// RolloutFilter narrows a listing of rollouts; zero fields match all.
type RolloutFilter struct {
	Model       string
	Environment string
	Phase       string
	// Active keeps only rollouts that have not ended.
	Active bool
}

// ListRollouts lists rollouts, newest first.
func (c *Client) ListRollouts(ctx context.Context, f RolloutFilter, p Page) (api.List[domain.Rollout], error) {
	q := listQuery(p, map[string]string{"model": f.Model, "environment": f.Environment, "phase": f.Phase})
	if f.Active {
		q.Set("active", "true")
	}
	var l api.List[domain.Rollout]
	return l, c.getJSON(ctx, "/api/v1/rollouts", q, &l)
}

// RolloutStatus returns a rollout with its plan's steps and the judge's
// latest verdict on its current run.
func (c *Client) RolloutStatus(ctx context.Context, id int64) (api.RolloutStatus, error) {
	var s api.RolloutStatus
	return s, c.getJSON(ctx, rolloutPath(id), nil, &s)
}

// RolloutCommand asks a rollout to pause, resume, promote, abort, undo,
// or to approve or reject its current approval step; reason says why
// (the comment of an approval). It returns the rollout as stored after
// the command.
func (c *Client) RolloutCommand(ctx context.Context, id int64, kind rollout.CommandKind, reason string) (domain.Rollout, error) {
	var r domain.Rollout
	return r, c.sendJSON(ctx, http.MethodPost, rolloutPath(id)+"/"+url.PathEscape(string(kind)), api.RolloutCommandRequest{Reason: reason}, &r)
}

func rolloutPath(id int64) string { return "/api/v1/rollouts/" + strconv.FormatInt(id, 10) }
