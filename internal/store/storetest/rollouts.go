package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/store"
)

// rolloutSpec is YAML as a person wrote it: comments, quotes, '<' and
// '&', non-ASCII, a trailing newline. It is stored as given.
const rolloutSpec = "kind: Rollout\nmodel: m   # the model\nenvironment: production\ncandidate: \"@challenger\"\n" +
	"strategy:\n  canary:\n    steps:\n      - weight: 5\n        pause: 30s\n      - approval: {role: approver}\n" +
	"# notes: p99 < 40 ms & errors ≤ 2 %\n"

// seedRolloutModel creates model with versions 1 to 3.
func seedRolloutModel(t *testing.T, s store.Store, model string) {
	t.Helper()
	createModel(t, s, model)
	for range 3 {
		createVersion(t, s, domain.Version{Model: model})
	}
}

// newRollout is a pending rollout of m from version 1 to 2, as
// rollout.NewRollout makes one.
func newRollout(model, env string) domain.Rollout {
	return domain.Rollout{Model: model, Environment: env, Strategy: "canary", Baseline: 1, Candidate: 2, CandidateRef: "2",
		Spec: rolloutSpec, Phase: domain.RolloutPending, Traffic: domain.RolloutTraffic{Baseline: 100},
		InEffect: true, CreatedBy: "ann", CreatedAt: t0, UpdatedAt: t0, StepStartedAt: t0}
}

// fullRollout sets every field of a rollout, times in a zone other than
// UTC. Each call builds new slices, so a test may change one freely.
func fullRollout() domain.Rollout {
	f := func(v float64) *float64 { return &v }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	promoted, ended := at(time.Hour), at(2*time.Hour)
	return domain.Rollout{
		Model: "m", Environment: "production", Strategy: "abTest", Baseline: 1, Candidate: 3, CandidateRef: "@challenger",
		Spec: rolloutSpec, PromotionID: 7, Phase: domain.RolloutAwaitingApproval, Reason: "step 2 waits for an approver <role>",
		Step: 2, StepStartedAt: at(time.Minute),
		Traffic: domain.RolloutTraffic{Baseline: 75, Candidate: 25, Sticky: &domain.StickyKey{Header: "X-User"}},
		Run:     4, RunStartedAt: at(2 * time.Minute), InEffect: false, AliasesMoved: true,
		Approvals: []domain.RolloutApproval{{Step: 1, By: "bob", Role: domain.RoleApprover, Approve: true, Comment: "ok & go", At: at(3 * time.Minute)}},
		Verdicts: []domain.RolloutVerdict{{Step: 1, Run: 3, Outcome: domain.AnalysisPass, Reason: "all rules pass",
			CandidateRequests: 1 << 40, BaselineRequests: 12345, At: at(4 * time.Minute),
			Evidence: []domain.RolloutEvidence{{Rule: "error_rate max", Method: "msprt", Outcome: domain.AnalysisPass,
				Observed: f(0.0125), Threshold: f(0.02), Candidate: f(0.0125), Baseline: f(0.011), CandidateSamples: 400,
				BaselineSamples: 1600, Lower: f(0.001), Upper: f(0.019), Detail: "ok"}}}},
		History: []domain.RolloutTransition{
			{From: domain.RolloutPending, To: domain.RolloutProgressing, Event: "start", At: at(time.Second)},
			{From: domain.RolloutProgressing, To: domain.RolloutAwaitingApproval, Event: "await-approval", Step: 2, By: "ann", Reason: "r", At: at(5 * time.Minute)},
		},
		CreatedBy: "ann", CreatedAt: t0, UpdatedAt: at(6 * time.Minute), PromotedAt: &promoted, EndedAt: &ended,
		Revision: 99, // ignored: the store assigns 1
	}
}

// rolloutTimes points at every time of a rollout.
func rolloutTimes(r *domain.Rollout) map[string]*time.Time {
	ts := map[string]*time.Time{"created at": &r.CreatedAt, "updated at": &r.UpdatedAt,
		"step started at": &r.StepStartedAt, "run started at": &r.RunStartedAt}
	if r.PromotedAt != nil {
		ts["promoted at"] = r.PromotedAt
	}
	if r.EndedAt != nil {
		ts["ended at"] = r.EndedAt
	}
	for i := range r.Approvals {
		ts[fmt.Sprintf("approval %d", i)] = &r.Approvals[i].At
	}
	for i := range r.Verdicts {
		ts[fmt.Sprintf("verdict %d", i)] = &r.Verdicts[i].At
	}
	for i := range r.History {
		ts[fmt.Sprintf("transition %d", i)] = &r.History[i].At
	}
	return ts
}

// checkRollout fails unless got is want with every time the same
// instant, in UTC. It changes neither.
func checkRollout(t *testing.T, what string, got, want domain.Rollout) {
	t.Helper()
	got, want = copyRollout(got), copyRollout(want)
	gt, wt := rolloutTimes(&got), rolloutTimes(&want)
	if len(gt) != len(wt) {
		t.Errorf("%s: %d times, want %d:\n got %+v\nwant %+v", what, len(gt), len(wt), got, want)
		return
	}
	for name, w := range wt {
		g, ok := gt[name]
		if !ok {
			t.Errorf("%s: no %s", what, name)
			continue
		}
		checkTime(t, what+": "+name, *g, *w)
		*g, *w = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// copyRollout copies the slices and time pointers of r.
func copyRollout(r domain.Rollout) domain.Rollout {
	r.Approvals = append([]domain.RolloutApproval(nil), r.Approvals...)
	r.Verdicts = append([]domain.RolloutVerdict(nil), r.Verdicts...)
	r.History = append([]domain.RolloutTransition(nil), r.History...)
	if r.PromotedAt != nil {
		p := *r.PromotedAt
		r.PromotedAt = &p
	}
	if r.EndedAt != nil {
		e := *r.EndedAt
		r.EndedAt = &e
	}
	return r
}

func createRollout(t *testing.T, s store.Store, r domain.Rollout) domain.Rollout {
	t.Helper()
	var got domain.Rollout
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.CreateRollout(ctx, r)
		return err
	})
	return got
}

// casRollout stores r over its rollout if the stored revision is still
// expected.
func casRollout(t *testing.T, s store.Store, r domain.Rollout, expected int64) (domain.Rollout, error) {
	var got domain.Rollout
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		var err error
		got, err = tx.UpdateRollout(ctx, r, expected)
		return err
	})
	return got, err
}

func testRolloutRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRolloutModel(t, s, "m")
	in := fullRollout()
	created := createRollout(t, s, in)
	want := fullRollout()
	want.ID, want.Revision = 1, 1
	checkRollout(t, "created rollout", created, want)
	if !reflect.DeepEqual(in, fullRollout()) {
		t.Errorf("CreateRollout changed its argument: %+v", in)
	}
	got, err := s.GetRollout(ctx, 1)
	must(t, "GetRollout", err)
	checkRollout(t, "stored rollout", got, want)
	if got.Spec != rolloutSpec {
		t.Errorf("spec came back as %q", got.Spec)
	}
	// Every field changes and comes back, and nils stay nil.
	next := fullRollout()
	next.ID, next.Phase, next.Reason, next.Step, next.Run, next.InEffect, next.AliasesMoved = 1, domain.RolloutPaused, "", 0, 5, true, false
	next.PromotionID, next.Traffic = 0, domain.RolloutTraffic{Baseline: 100, ShadowPercent: 12.5}
	next.Approvals, next.Verdicts, next.History, next.PromotedAt, next.EndedAt = nil, nil, next.History[:1], nil, nil
	next.UpdatedAt = t0.Add(time.Hour)
	stored, err := casRollout(t, s, next, 1)
	must(t, "UpdateRollout", err)
	next.Revision = 2
	checkRollout(t, "updated rollout", stored, next)
	got, err = s.GetRollout(ctx, 1)
	must(t, "GetRollout after update", err)
	checkRollout(t, "stored after update", got, next)
	_, err = s.GetRollout(ctx, 2)
	wantErr(t, "GetRollout unknown", err, domain.ErrNotFound)
}

func testRolloutCompareAndSwap(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRolloutModel(t, s, "m")
	r := createRollout(t, s, newRollout("m", "production"))
	a, b := r, r
	a.Phase, a.Traffic, a.InEffect = domain.RolloutProgressing, domain.RolloutTraffic{Baseline: 95, Candidate: 5}, false
	b.Phase, b.Reason = domain.RolloutAborted, "stale writer"
	stored, err := casRollout(t, s, a, r.Revision)
	must(t, "first writer", err)
	if stored.Revision != 2 {
		t.Fatalf("revision after one update = %d", stored.Revision)
	}
	_, err = casRollout(t, s, b, r.Revision)
	wantErr(t, "second writer on the same revision", err, domain.ErrConflict)
	got, _ := s.GetRollout(ctx, r.ID)
	if got.Revision != 2 || got.Phase != domain.RolloutProgressing || got.Traffic.Candidate != 5 {
		t.Fatalf("after a lost race: %+v", got)
	}
	_, err = casRollout(t, s, b, 3)
	wantErr(t, "a revision from the future", err, domain.ErrConflict)
	// The caller's Revision field is not the check; expectedRevision is.
	b.Revision = 2
	_, err = casRollout(t, s, b, 1)
	wantErr(t, "stale expected revision", err, domain.ErrConflict)
	if got, _ = s.GetRollout(ctx, r.ID); got.Revision != 2 {
		t.Fatalf("revision after refused writes = %d", got.Revision)
	}
	ghost := got
	ghost.ID = 42
	_, err = casRollout(t, s, ghost, 1)
	wantErr(t, "update of a missing rollout", err, domain.ErrNotFound)
	bad := got
	bad.Traffic.Candidate = 50
	_, err = casRollout(t, s, bad, 2)
	wantErr(t, "weights not summing to 100", err, domain.ErrInvalid)
	for name, change := range map[string]func(*domain.Rollout){
		"model":       func(r *domain.Rollout) { r.Model = "n" },
		"environment": func(r *domain.Rollout) { r.Environment = "staging" },
		"candidate":   func(r *domain.Rollout) { r.Candidate = 3 },
		"spec":        func(r *domain.Rollout) { r.Spec += "# more\n" },
		"created at":  func(r *domain.Rollout) { r.CreatedAt = r.CreatedAt.Add(time.Second) },
	} {
		c := got
		change(&c)
		_, err := casRollout(t, s, c, 2)
		wantErr(t, "changing the "+name, err, domain.ErrInvalid)
	}
	if again, _ := s.GetRollout(ctx, r.ID); !reflect.DeepEqual(again, got) {
		t.Fatalf("refused updates changed the rollout:\n got %+v\nwant %+v", again, got)
	}
}

// testRolloutConcurrentCreates starts rollouts of one model in two
// environments from many goroutines at once: exactly one per environment
// wins, and every loser's conflict names the winner.
func testRolloutConcurrentCreates(t *testing.T, s store.Store) {
	seedRolloutModel(t, s, "m")
	const n = 8
	envs := []string{"production", "staging"}
	errs := make([]error, n)
	won := make([]domain.Rollout, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := newRollout("m", envs[i%2])
			r.CreatedBy = fmt.Sprintf("user%d", i)
			errs[i] = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				var err error
				won[i], err = tx.CreateRollout(ctx, r)
				return err
			})
		})
	}
	wg.Wait()
	winners := map[string]domain.Rollout{}
	for i, err := range errs {
		if err == nil {
			if w, dup := winners[envs[i%2]]; dup {
				t.Fatalf("two active rollouts in %s: %d and %d", envs[i%2], w.ID, won[i].ID)
			}
			winners[envs[i%2]] = won[i]
		} else if !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("create %d: %v, want a win or ErrConflict", i, err)
		}
	}
	if len(winners) != 2 {
		t.Fatalf("winners = %v, want one per environment", winners)
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if w := winners[envs[i%2]]; !strings.Contains(err.Error(), fmt.Sprintf("rollout %d ", w.ID)) {
			t.Errorf("create %d in %s: %q does not name rollout %d", i, envs[i%2], err, w.ID)
		}
	}
	all, _, err := s.ListRollouts(t.Context(), store.RolloutFilter{}, store.Page{})
	must(t, "ListRollouts", err)
	if len(all) != 2 {
		t.Fatalf("%d rollouts stored, want 2", len(all))
	}
}

// testRolloutEnded: a rollout that ended takes one more write, marking
// its end state in effect, and nothing after.
func testRolloutEnded(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRolloutModel(t, s, "m")
	r := createRollout(t, s, newRollout("m", "production"))
	end := t0.Add(time.Minute)
	r.Phase, r.Reason, r.InEffect, r.EndedAt, r.UpdatedAt = domain.RolloutRolledBack, "error_rate max failed", false, &end, end
	r.History = []domain.RolloutTransition{{From: domain.RolloutPending, To: domain.RolloutRolledBack, Event: "error", At: end}}
	r, err := casRollout(t, s, r, 1)
	must(t, "roll back", err)

	for name, change := range map[string]func(*domain.Rollout){
		"reason":            func(r *domain.Rollout) { r.Reason = "rewritten"; r.InEffect = true },
		"phase":             func(r *domain.Rollout) { r.Phase = domain.RolloutProgressing; r.InEffect = true },
		"history":           func(r *domain.Rollout) { r.History = nil; r.InEffect = true },
		"traffic":           func(r *domain.Rollout) { r.Traffic = domain.RolloutTraffic{Candidate: 100}; r.InEffect = true },
		"updated at only":   func(r *domain.Rollout) { r.UpdatedAt = r.UpdatedAt.Add(time.Second) },
		"verdict, no mark":  func(r *domain.Rollout) { r.Verdicts = []domain.RolloutVerdict{{Outcome: domain.AnalysisFail, At: end}} },
		"aliases and mark":  func(r *domain.Rollout) { r.AliasesMoved = true; r.InEffect = true },
		"superseded, marks": func(r *domain.Rollout) { r.Phase = domain.RolloutSuperseded; r.InEffect = true },
	} {
		c := copyRollout(r)
		change(&c)
		_, err := casRollout(t, s, c, r.Revision)
		wantErr(t, "ended rollout, changing "+name, err, domain.ErrPrecondition)
	}
	stale := r
	stale.InEffect = true
	_, err = casRollout(t, s, stale, 1)
	wantErr(t, "ended rollout, stale revision", err, domain.ErrConflict)

	mark := copyRollout(r)
	mark.InEffect, mark.UpdatedAt = true, end.Add(time.Second)
	// The same instant in another zone is no change.
	mark.History[0].At = end.In(time.FixedZone("X", -5*60*60))
	marked, err := casRollout(t, s, mark, r.Revision)
	must(t, "mark an ended rollout in effect", err)
	if marked.Revision != 3 || !marked.InEffect {
		t.Fatalf("marked = revision %d, in effect %v", marked.Revision, marked.InEffect)
	}
	for _, c := range []domain.Rollout{marked, func() domain.Rollout { c := marked; c.InEffect = false; return c }()} {
		_, err := casRollout(t, s, c, marked.Revision)
		wantErr(t, fmt.Sprintf("ended rollout in effect, writing in effect %v", c.InEffect), err, domain.ErrPrecondition)
	}
	got, err := s.GetRollout(ctx, r.ID)
	must(t, "GetRollout", err)
	checkRollout(t, "ended rollout", got, marked)

	// Promoting (undo is still possible) is not an end: it changes freely.
	p := createRollout(t, s, newRollout("m", "production"))
	p.Phase, p.Traffic, p.AliasesMoved, p.InEffect = domain.RolloutPromoting, domain.RolloutTraffic{Candidate: 100}, true, true
	p, err = casRollout(t, s, p, 1)
	must(t, "promote", err)
	p.Phase, p.Reason, p.Traffic, p.InEffect = domain.RolloutRolledBack, "undo by bob", domain.RolloutTraffic{Baseline: 100}, false
	_, err = casRollout(t, s, p, p.Revision)
	must(t, "undo while promoting", err)
}

func testActiveRollout(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRolloutModel(t, s, "m")
	_, err := s.ActiveRollout(ctx, "m", "production")
	wantErr(t, "ActiveRollout of none", err, domain.ErrNotFound)
	first := createRollout(t, s, newRollout("m", "production"))
	got, err := s.ActiveRollout(ctx, "m", "production")
	must(t, "ActiveRollout", err)
	checkRollout(t, "active rollout", got, first)
	_, err = s.ActiveRollout(ctx, "m", "staging")
	wantErr(t, "ActiveRollout of another environment", err, domain.ErrNotFound)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.CreateRollout(ctx, newRollout("m", "production"))
		return err
	})
	wantErr(t, "a second active rollout", err, domain.ErrConflict)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rollout %d ", first.ID)) {
		t.Errorf("conflict %q does not name rollout %d", err, first.ID)
	}
	for _, phase := range []domain.RolloutPhase{domain.RolloutProgressing, domain.RolloutPaused, domain.RolloutAwaitingApproval, domain.RolloutPromoting} {
		first.Phase = phase
		if first, err = casRollout(t, s, first, first.Revision); err != nil {
			t.Fatalf("to %s: %v", phase, err)
		}
		if got, err := s.ActiveRollout(ctx, "m", "production"); err != nil || got.ID != first.ID {
			t.Fatalf("ActiveRollout while %s = %d, %v", phase, got.ID, err)
		}
	}
	first.Phase, first.Traffic = domain.RolloutSucceeded, domain.RolloutTraffic{Candidate: 100, BaselineRetired: true}
	_, err = casRollout(t, s, first, first.Revision)
	must(t, "succeed", err)
	_, err = s.ActiveRollout(ctx, "m", "production")
	wantErr(t, "ActiveRollout after the end", err, domain.ErrNotFound)
	second := createRollout(t, s, newRollout("m", "production"))
	if got, _ := s.ActiveRollout(ctx, "m", "production"); got.ID != second.ID || second.ID != first.ID+1 {
		t.Fatalf("active after a new start = %d, created %d", got.ID, second.ID)
	}
}

func testRolloutCreateRefusals(t *testing.T, s store.Store) {
	seedRolloutModel(t, s, "m")
	for _, tc := range []struct {
		name   string
		change func(*domain.Rollout)
		want   error
	}{
		{"unknown model", func(r *domain.Rollout) { r.Model = "ghost" }, domain.ErrNotFound},
		{"unknown candidate", func(r *domain.Rollout) { r.Candidate = 9 }, domain.ErrNotFound},
		{"unknown baseline", func(r *domain.Rollout) { r.Baseline = 9 }, domain.ErrNotFound},
		{"same versions", func(r *domain.Rollout) { r.Candidate = 1 }, domain.ErrInvalid},
		{"unknown phase", func(r *domain.Rollout) { r.Phase = "dancing" }, domain.ErrInvalid},
		{"ended", func(r *domain.Rollout) { r.Phase = domain.RolloutAborted }, domain.ErrInvalid},
		{"bad environment", func(r *domain.Rollout) { r.Environment = "Prod Env" }, domain.ErrInvalid},
	} {
		r := newRollout("m", "production")
		tc.change(&r)
		err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.CreateRollout(ctx, r)
			return err
		})
		wantErr(t, tc.name, err, tc.want)
	}
	if rs, _, err := s.ListRollouts(t.Context(), store.RolloutFilter{}, store.Page{}); err != nil || len(rs) != 0 {
		t.Fatalf("refused creates stored %d rollouts (%v)", len(rs), err)
	}
}

func rolloutIDs(rs []domain.Rollout) []int64 {
	out := []int64{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// listAllRollouts walks every page of a listing.
func listAllRollouts(t *testing.T, s store.Store, f store.RolloutFilter, limit int) []int64 {
	t.Helper()
	var all []int64
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("ListRollouts: more than 1000 pages; the cursor does not advance")
		}
		rs, next, err := s.ListRollouts(t.Context(), f, store.Page{Limit: limit, Cursor: cursor})
		must(t, fmt.Sprintf("ListRollouts(%+v) page %d", f, page), err)
		if len(rs) > limit || (next != "" && len(rs) == 0) {
			t.Fatalf("ListRollouts: page of %d, limit %d, next %q", len(rs), limit, next)
		}
		all = append(all, rolloutIDs(rs)...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func testRolloutListing(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRolloutModel(t, s, "m")
	seedRolloutModel(t, s, "n")
	// 1 m/production rolled back, not in effect
	// 2 m/staging    succeeded, in effect
	// 3 n/production paused
	// 4 m/production progressing, not in effect
	// 5 n/staging    aborted, in effect
	// 6 m/staging    pending
	type plan struct {
		model, env string
		end        domain.RolloutPhase
		inEffect   bool
	}
	for _, p := range []plan{
		{"m", "production", domain.RolloutRolledBack, false},
		{"m", "staging", domain.RolloutSucceeded, true},
		{"n", "production", domain.RolloutPaused, true},
		{"m", "production", domain.RolloutProgressing, false},
		{"n", "staging", domain.RolloutAborted, true},
		{"m", "staging", domain.RolloutPending, true},
	} {
		r := createRollout(t, s, newRollout(p.model, p.env))
		if p.end == domain.RolloutPending {
			continue
		}
		r.Phase, r.InEffect = p.end, p.inEffect
		if p.end == domain.RolloutSucceeded {
			r.Traffic = domain.RolloutTraffic{Candidate: 100}
		}
		_, err := casRollout(t, s, r, r.Revision)
		must(t, fmt.Sprintf("rollout %d to %s", r.ID, p.end), err)
	}
	for _, tc := range []struct {
		f    store.RolloutFilter
		want []int64
	}{
		{store.RolloutFilter{}, []int64{6, 5, 4, 3, 2, 1}},
		{store.RolloutFilter{Model: "m"}, []int64{6, 4, 2, 1}},
		{store.RolloutFilter{Environment: "staging"}, []int64{6, 5, 2}},
		{store.RolloutFilter{Model: "m", Environment: "production"}, []int64{4, 1}},
		{store.RolloutFilter{Phase: domain.RolloutPaused}, []int64{3}},
		{store.RolloutFilter{Phase: domain.RolloutSuperseded}, []int64{}},
		{store.RolloutFilter{Active: true}, []int64{6, 4, 3}},
		{store.RolloutFilter{Active: true, Model: "n"}, []int64{3}},
		{store.RolloutFilter{Active: true, Phase: domain.RolloutAborted}, []int64{}},
		{store.RolloutFilter{NotInEffect: true}, []int64{4, 1}},
		{store.RolloutFilter{NotInEffect: true, Active: true}, []int64{4}},
		{store.RolloutFilter{Model: "ghost"}, []int64{}},
	} {
		for _, limit := range []int{1, 2, 100} {
			got := listAllRollouts(t, s, tc.f, limit)
			if got == nil {
				got = []int64{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListRollouts(%+v) by %d = %v, want %v", tc.f, limit, got, tc.want)
			}
		}
	}
	rs, next, err := s.ListRollouts(ctx, store.RolloutFilter{}, store.Page{Limit: 4})
	must(t, "first page", err)
	if !reflect.DeepEqual(rolloutIDs(rs), []int64{6, 5, 4, 3}) || next == "" {
		t.Fatalf("first page = %v, next %q", rolloutIDs(rs), next)
	}
	if rs[2].Phase != domain.RolloutProgressing || rs[2].InEffect || rs[2].Spec != rolloutSpec {
		t.Errorf("listed rollout 4 = %+v", rs[2])
	}
	_, _, err = s.ListRollouts(ctx, store.RolloutFilter{Phase: "dancing"}, store.Page{})
	wantErr(t, "unknown phase", err, domain.ErrInvalid)
	_, _, err = s.ListRollouts(ctx, store.RolloutFilter{}, store.Page{Cursor: "nope"})
	wantErr(t, "bad cursor", err, domain.ErrInvalid)
	_, _, err = s.ListRollouts(ctx, store.RolloutFilter{}, store.Page{Limit: store.MaxLimit + 1})
	wantErr(t, "limit out of range", err, domain.ErrInvalid)
	// A cursor of another list is not one of this list.
	_, pnext, err := s.ListModels(ctx, store.Page{Limit: 1})
	must(t, "ListModels", err)
	_, _, err = s.ListRollouts(ctx, store.RolloutFilter{}, store.Page{Cursor: pnext})
	wantErr(t, "a model cursor", err, domain.ErrInvalid)
}

// testRolloutReadsReleaseConnections repeats the rollout reads that
// return one row, found and not found, many more times than any pool has
// connections (see testReadsReleaseConnections).
func testRolloutReadsReleaseConnections(t *testing.T, s store.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seedRolloutModel(t, s, "m")
	r := createRollout(t, s, newRollout("m", "production"))
	for i := range 100 {
		if _, err := s.GetRollout(ctx, r.ID); err != nil {
			t.Fatalf("rollout, read %d: %v", i, err)
		}
		if _, err := s.GetRollout(ctx, r.ID+1); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("missing rollout, read %d: %v", i, err)
		}
		if _, err := s.ActiveRollout(ctx, "m", "production"); err != nil {
			t.Fatalf("active rollout, read %d: %v", i, err)
		}
		if _, err := s.ActiveRollout(ctx, "m", "staging"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("missing active rollout, read %d: %v", i, err)
		}
		if _, _, err := s.ListRollouts(ctx, store.RolloutFilter{Active: true}, store.Page{Limit: 1}); err != nil {
			t.Fatalf("rollout listing, read %d: %v", i, err)
		}
	}
}
