package rollout

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// legalCells is the state machine written out independently of the
// table in fsm.go, one "phase event -> next" per line. Every cell not
// listed must be refused.
const legalCells = `
pending start -> progressing
pending abort -> aborted
pending supersede -> superseded
pending error -> failed

progressing step-done -> progressing
progressing analysis-pass -> progressing
progressing analysis-fail -> rolled_back
progressing analysis-inconclusive-past-deadline -> paused
progressing smoke-pass -> progressing
progressing smoke-fail -> rolled_back
progressing await-approval -> awaiting_approval
progressing pause -> paused
progressing promote -> promoting
progressing steps-complete -> promoting
progressing abort -> aborted
progressing supersede -> superseded
progressing deadline-exceeded -> paused
progressing error -> failed

paused analysis-fail -> rolled_back
paused resume -> progressing
paused promote -> promoting
paused abort -> aborted
paused supersede -> superseded
paused error -> failed

awaiting_approval approval-granted -> progressing
awaiting_approval approval-rejected -> aborted
awaiting_approval analysis-fail -> rolled_back
awaiting_approval pause -> paused
awaiting_approval promote -> promoting
awaiting_approval abort -> aborted
awaiting_approval supersede -> superseded
awaiting_approval error -> failed

promoting promotion-complete -> succeeded
promoting undo -> rolled_back
promoting deadline-exceeded -> paused
promoting error -> failed
`

func expectedCells(t *testing.T) map[Phase]map[Event]Phase {
	t.Helper()
	out := map[Phase]map[Event]Phase{}
	for _, line := range strings.Split(legalCells, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		var from, ev, arrow, to string
		if n, err := fmt.Sscan(line, &from, &ev, &arrow, &to); n != 4 || err != nil || arrow != "->" {
			t.Fatalf("bad line %q", line)
		}
		p, err := domain.ParseRolloutPhase(from)
		if err != nil {
			t.Fatal(err)
		}
		q, err := domain.ParseRolloutPhase(to)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(Events, Event(ev)) {
			t.Fatalf("line %q: unknown event", line)
		}
		if out[p] == nil {
			out[p] = map[Event]Phase{}
		}
		out[p][Event(ev)] = q
	}
	return out
}

// TestTransitionEveryCell walks every (phase, event) pair.
func TestTransitionEveryCell(t *testing.T) {
	want := expectedCells(t)
	for _, p := range domain.RolloutPhases {
		var legal []Event
		for _, e := range Events {
			next, err := Transition(p, e)
			exp, ok := want[p][e]
			if ok {
				legal = append(legal, e)
				if err != nil || next != exp {
					t.Errorf("%s + %s = %q, %v; want %s", p, e, next, err, exp)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s + %s = %s; want refused", p, e, next)
				continue
			}
			var te *TransitionError
			if !errors.As(err, &te) || te.Phase != p || te.Event != e {
				t.Errorf("%s + %s: error %v is not a TransitionError naming them", p, e, err)
			}
			if !errors.Is(err, ErrInvalidTransition) || !errors.Is(err, domain.ErrPrecondition) {
				t.Errorf("%s + %s: error %v is not ErrInvalidTransition and ErrPrecondition", p, e, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, string(p)) || !strings.Contains(msg, string(e)) {
				t.Errorf("%s + %s: message %q does not name the phase and the event", p, e, msg)
			}
			for ev := range want[p] {
				if !strings.Contains(msg, string(ev)) {
					t.Errorf("%s + %s: message %q does not list the legal event %s", p, e, msg, ev)
				}
			}
			if len(want[p]) == 0 && !strings.Contains(msg, "final") {
				t.Errorf("%s + %s: message %q does not say the phase is final", p, e, msg)
			}
		}
		if got := Legal(p); !slices.Equal(got, legal) {
			t.Errorf("Legal(%s) = %v, want %v", p, got, legal)
		}
		if p.Terminal() != (len(legal) == 0) {
			t.Errorf("%s: Terminal() = %v but it accepts %v", p, p.Terminal(), legal)
		}
	}
	if _, err := Transition("bogus", EventStart); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("unknown phase: %v, want ErrInvalid", err)
	}
}

// TestEveryPhaseReachableAndEnds: every phase is reachable from pending,
// and every active phase can reach a terminal one.
func TestEveryPhaseReachableAndEnds(t *testing.T) {
	seen := map[Phase]bool{domain.RolloutPending: true}
	queue := []Phase{domain.RolloutPending}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, e := range Legal(p) {
			next, _ := Transition(p, e)
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		}
	}
	for _, p := range domain.RolloutPhases {
		if !seen[p] {
			t.Errorf("phase %s is unreachable from pending", p)
		}
		if p.Terminal() {
			continue
		}
		if next, err := Transition(p, EventError); err != nil || !next.Terminal() {
			t.Errorf("active phase %s has no way to fail: %v", p, err)
		}
	}
}

// TestEveryEventUsed: an event no phase accepts would be dead weight.
func TestEveryEventUsed(t *testing.T) {
	for _, e := range Events {
		used := false
		for _, p := range domain.RolloutPhases {
			if _, err := Transition(p, e); err == nil {
				used = true
			}
		}
		if !used {
			t.Errorf("event %s is accepted by no phase", e)
		}
	}
}

// TestDocsDiagram: the state diagram in docs/rollouts.md draws exactly
// the table.
func TestDocsDiagram(t *testing.T) {
	data, err := os.ReadFile("../../docs/rollouts.md")
	if err != nil {
		t.Fatal(err)
	}
	_, diagram, ok := strings.Cut(string(data), "```mermaid\nstateDiagram-v2\n")
	diagram, _, _ = strings.Cut(diagram, "```")
	if !ok || diagram == "" {
		t.Fatal("no state diagram in docs/rollouts.md")
	}
	drawn := map[[2]string]string{}
	for _, line := range strings.Split(diagram, "\n") {
		from, rest, ok := strings.Cut(strings.TrimSpace(line), " --> ")
		to, events, labelled := strings.Cut(rest, ": ")
		if !ok || !labelled {
			continue
		}
		for _, e := range strings.Split(events, ", ") {
			key := [2]string{from, e}
			if prev, dup := drawn[key]; dup {
				t.Errorf("diagram draws %s + %s twice (%s, %s)", from, e, prev, to)
			}
			drawn[key] = to
		}
	}
	for _, p := range domain.RolloutPhases {
		for _, e := range Legal(p) {
			next, _ := Transition(p, e)
			key := [2]string{string(p), string(e)}
			if drawn[key] != string(next) {
				t.Errorf("diagram: %s + %s goes to %q, the table says %s", p, e, drawn[key], next)
			}
			delete(drawn, key)
		}
	}
	for k, to := range drawn {
		t.Errorf("diagram draws %s + %s -> %s, which the table does not have", k[0], k[1], to)
	}
}
