package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/auth"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/rollout"
	"github.com/slipway-ml/slipway/internal/store"
)

// runner is one rollout's loop. Its mutex makes the loop's ticks and
// people's commands take turns, so one process never races itself; the
// store's compare-and-swap catches anyone else.
type runner struct {
	c  *Controller
	id int64

	mu sync.Mutex
	// st is the rollout as last stored, with its plan; loaded is false
	// until the first read and after a conflict.
	st     rollout.State
	loaded bool
	// judge is the judge's state for the current analysis run.
	judge judgeState
	// smoke is the last smoke result, for the run it tested.
	smoke *rollout.SmokeResult
	// applyErr is why carrying the stored state out failed, and
	// applyFails how many times in a row; retryAt is when to try again.
	applyErr   error
	applyFails int
	retryAt    time.Time

	wake chan struct{}
}

func newRunner(c *Controller, id int64) *runner {
	return &runner{c: c, id: id, wake: make(chan struct{}, 1)}
}

// poke makes the loop tick soon.
func (rn *runner) poke() {
	select {
	case rn.wake <- struct{}{}:
	default:
	}
}

// maxApplyFails is how many times in a row carrying out a state may fail
// before an active rollout is failed (its baseline put back): a
// candidate that cannot be served, a version gone.
const maxApplyFails = 5

// loop ticks until the rollout has ended and its end is in effect, or ctx
// ends.
func (rn *runner) loop(ctx context.Context) {
	for {
		d, err := rn.tick(ctx, nil)
		if ctx.Err() != nil {
			return
		}
		wait := rn.c.cfg.Interval
		switch {
		case err != nil:
			rn.c.cfg.Log.Error("rollout controller", "rollout", rn.id, "err", err.Error())
			wait = time.Second
		case d.Rollout.Phase.Terminal() && d.Rollout.InEffect:
			return
		default:
			wait = rn.next(d)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-rn.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// next is how long the loop may sleep after decision d.
func (rn *runner) next(d rollout.Decision) time.Duration {
	now := rn.c.cfg.Clock.Now()
	wait := time.Hour
	if d.Judge != nil {
		wait = rn.c.cfg.Interval
	}
	if !d.WakeAt.IsZero() {
		wait = min(wait, max(d.WakeAt.Sub(now), 0))
	}
	if !d.Rollout.InEffect {
		rn.mu.Lock() // a command's tick may move retryAt meanwhile
		retryAt := rn.retryAt
		rn.mu.Unlock()
		wait = min(wait, max(retryAt.Sub(now), 0))
	}
	return max(wait, time.Millisecond)
}

// tick runs Step once over what is observed now, with cmds, stores the
// decision and carries it out; then, while the rollout can move on
// without waiting (its new state was just put into effect, or smoke
// results came in), steps again. The decision returned carries the
// commands' results.
func (rn *runner) tick(ctx context.Context, cmds []rollout.Command) (rollout.Decision, error) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	var (
		d       rollout.Decision
		results []rollout.CommandResult
	)
	for range 16 {
		again, err := rn.once(ctx, &cmds, &d)
		if cmds == nil && results == nil {
			results = d.Commands
		}
		if errors.Is(err, domain.ErrConflict) {
			// Someone else stored a revision: read it and decide again.
			rn.loaded = false
			continue
		}
		if err != nil || !again {
			d.Commands = results
			return d, err
		}
	}
	d.Commands = results
	return d, nil
}

// once is one Step: observe, decide, store, carry out. It sets *cmds to
// nil once the commands' outcome is stored (or nothing changed), so a
// retry after a conflict does not give them twice; again reports that
// stepping once more may move the rollout on.
func (rn *runner) once(ctx context.Context, cmds *[]rollout.Command, out *rollout.Decision) (again bool, err error) {
	if !rn.loaded {
		r, err := rn.c.cfg.Store.GetRollout(ctx, rn.id)
		if err != nil {
			return false, err
		}
		st, err := rollout.Load(r)
		if err != nil {
			return false, fmt.Errorf("rollout %d: its stored spec no longer reads: %w", rn.id, err)
		}
		rn.st, rn.loaded = st, true
	}
	now := rn.c.cfg.Clock.Now()
	obs := rollout.Observations{Commands: *cmds, Smoke: rn.smoke}
	obs.Analysis = rn.judgeNow(ctx, now)
	if rn.applyFails >= maxApplyFails && rn.applyErr != nil {
		obs.Error = rn.applyErr.Error()
	}
	d := rollout.Step(now, rn.st, obs)
	*out = d
	if d.Changed {
		stored, err := rn.c.save(ctx, rn.st.Rollout, d)
		if err != nil {
			return false, err
		}
		rn.st.Rollout = stored
		d.Rollout = stored
		*out = d
	}
	*cmds = nil
	rn.judge.req = d.Judge
	if d.Apply != nil && !now.Before(rn.retryAt) {
		// A new analysis run counts from just before its traffic is put
		// into effect, so no request of the new split goes unjudged.
		rn.startRun(d.Judge)
		if err := rn.c.carryOut(ctx, rn.id, *d.Apply); err != nil {
			rn.applyErr, rn.applyFails = err, rn.applyFails+1
			rn.retryAt = now.Add(min(time.Duration(rn.applyFails)*time.Second, 10*time.Second))
			rn.c.cfg.Log.Warn("carrying out a rollout's state failed; trying again", "rollout", rn.id,
				"phase", string(d.Rollout.Phase), "attempt", rn.applyFails, "err", err.Error())
			// At the limit, step once more: Step fails the rollout.
			return rn.applyFails == maxApplyFails && !d.Rollout.Phase.Terminal(), nil
		}
		rn.applyErr, rn.applyFails, rn.retryAt = nil, 0, time.Time{}
		r := d.Rollout
		r.InEffect = true
		r.UpdatedAt = rn.c.cfg.Clock.Now()
		var stored domain.Rollout
		err := rn.c.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			var err error
			stored, err = tx.UpdateRollout(ctx, r, r.Revision)
			return err
		})
		if err != nil {
			return false, err
		}
		rn.st.Rollout = stored
		d.Rollout = stored
		*out = d
		again = true
	}
	if d.Smoke != nil && (rn.smoke == nil || rn.smoke.Run != d.Smoke.Run) {
		res := rn.c.runSmoke(ctx, rn.st.Rollout, *d.Smoke)
		rn.smoke = &res
		again = true
	}
	return again, nil
}

// failFast fails the rollout now when carrying out its first state
// failed, instead of retrying with backoff: at the start nothing serves
// the candidate yet, so there is nothing to wait for. It reports whether
// it did.
func (rn *runner) failFast(ctx context.Context) bool {
	rn.mu.Lock()
	if rn.applyErr == nil {
		rn.mu.Unlock()
		return false
	}
	rn.applyFails, rn.retryAt = maxApplyFails, time.Time{}
	rn.mu.Unlock()
	_, err := rn.tick(ctx, nil)
	return err == nil
}

// Command applies a person's command to rollout id now and returns the
// rollout as stored after it; a command the rollout's phase or plan does
// not allow is an ErrPrecondition naming what is possible.
func (c *Controller) Command(ctx context.Context, who Actor, id int64, kind rollout.CommandKind, reason string) (domain.Rollout, error) {
	if _, err := c.cfg.Store.GetRollout(ctx, id); err != nil {
		return domain.Rollout{}, err
	}
	if len(reason) > 1024 {
		return domain.Rollout{}, fmt.Errorf("the reason is %d bytes, at most 1024 allowed: %w", len(reason), domain.ErrInvalid)
	}
	rn := c.ensure(id)
	d, err := rn.tick(ctx, []rollout.Command{{Kind: kind, By: who.Name, Role: who.Role, Reason: reason}})
	if err != nil {
		return domain.Rollout{}, err
	}
	rn.poke()
	for _, res := range d.Commands {
		var te *rollout.TransitionError
		switch {
		case errors.As(res.Err, &te):
			// Say what a person may do, not which internal events the
			// phase accepts.
			var can []string
			for _, k := range rollout.Commands(te.Phase) {
				can = append(can, string(k))
			}
			now := "nothing: it has ended"
			if len(can) > 0 {
				now = strings.Join(can, ", ")
			}
			return d.Rollout, fmt.Errorf("rollout %d is %s (%s): %s is not possible now; possible: %s: %w",
				id, te.Phase, d.Rollout.Reason, kind, now, domain.ErrPrecondition)
		case errors.Is(res.Err, rollout.ErrNotPermitted):
			msg := strings.TrimSuffix(res.Err.Error(), ": "+rollout.ErrNotPermitted.Error())
			return d.Rollout, fmt.Errorf("rollout %d: %s: %w", id, msg, auth.ErrForbidden)
		case res.Err != nil:
			return d.Rollout, fmt.Errorf("rollout %d: %w", id, res.Err)
		}
	}
	return rn.current(), nil
}

// current is the rollout as the runner last stored or read it.
func (rn *runner) current() domain.Rollout {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.st.Rollout
}
