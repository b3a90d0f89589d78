// Package rollout is the pure core of progressive delivery: the Rollout
// spec (ParseSpec), the plan a spec expands to (NewPlan), the state
// machine of a rollout's phases (the one table in fsm.go), and Step, which
// from the time, the stored rollout and what the controller observed
// decides the next state to store and the end state to bring about.
//
// It owns no goroutine, clock, store or network: the controller reads
// time and metrics, runs the judge (internal/analysis) and hands Step its
// verdicts as values. It must not import net/http, database/sql, os/exec
// or any impure slipway package; its tests never sleep.
package rollout
