package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/analysis"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// MaxSpecBytes bounds a rollout spec file.
const MaxSpecBytes = 64 << 10

// Bounds of the durations and lists a spec may give.
const (
	MaxPause            = 24 * time.Hour
	MaxShadowDuration   = 24 * time.Hour
	MaxABTestDuration   = 30 * 24 * time.Hour
	MaxKeepPrevious     = 24 * time.Hour
	MinProgressDeadline = 10 * time.Second
	MaxProgressDeadline = 24 * time.Hour
	// DefaultProgressDeadline is how long a step may wait for a verdict,
	// a smoke result or the controller before the rollout pauses.
	DefaultProgressDeadline = 10 * time.Minute
	maxCanarySteps          = 32
	maxMinSamples           = 1_000_000_000
)

// Strategy is how a rollout moves traffic.
type Strategy string

// Strategies, named as the spec writes them.
const (
	Canary    Strategy = "canary"
	BlueGreen Strategy = "blueGreen"
	Shadow    Strategy = "shadow"
	ABTest    Strategy = "abTest"
)

// RollbackMode says what a failed verdict does: automatic puts the
// baseline back at once, manual pauses and leaves it to a person.
type RollbackMode string

// Rollback modes.
const (
	RollbackAutomatic RollbackMode = "automatic"
	RollbackManual    RollbackMode = "manual"
)

// Winner says who ends an A/B test: a person (manual), or the analysis
// rules (a Pass promotes the candidate).
type Winner string

// Winners.
const (
	WinnerManual   Winner = "manual"
	WinnerAnalysis Winner = "analysis"
)

// Spec is a Rollout document, validated. Exactly one of the strategy
// blocks is set, the one Strategy names.
type Spec struct {
	Model       string
	Environment string
	Candidate   CandidateRef
	Strategy    Strategy
	Canary      *CanarySpec
	BlueGreen   *BlueGreenSpec
	Shadow      *ShadowSpec
	ABTest      *ABTestSpec
	// Analysis is nil when the spec has no analysis block: nothing is
	// judged and steps move on time and approvals alone.
	Analysis         *analysis.Spec
	Rollback         RollbackMode
	ProgressDeadline time.Duration
	// Source is the document as given.
	Source string
}

// CandidateRef names the candidate: an alias (resolved when the rollout
// is created) or a version number.
type CandidateRef struct {
	Alias   string
	Version int
}

// String is the ref as the spec and the registry write it: "@alias" or "3".
func (c CandidateRef) String() string {
	if c.Alias != "" {
		return "@" + c.Alias
	}
	return strconv.Itoa(c.Version)
}

// CanaryStep is one item of a canary's steps. Its parts run in the order
// weight, pause, analysis, approval; at least one is set.
type CanaryStep struct {
	Weight   int           // the candidate's percent of live traffic; 0: unchanged
	Pause    time.Duration // hold for this long; 0: no pause
	Analysis *AnalysisStep // wait for a Pass
	Approval *ApprovalStep // wait for a person
}

// AnalysisStep is an explicit analysis gate; MinSamples, when set,
// raises the spec's minSamples for this gate.
type AnalysisStep struct {
	MinSamples int
}

// ApprovalStep waits for a person holding Role.
type ApprovalStep struct {
	Role domain.Role
}

// CanarySpec moves live traffic to the candidate step by step.
type CanarySpec struct {
	Steps []CanaryStep
}

// BlueGreenSpec starts the candidate beside the baseline at 0 %, checks
// it with smoke requests (and, with PreSwitch, mirrored traffic judged by
// the analysis), switches all traffic at once, and keeps the baseline
// warm for KeepPrevious so an undo is instant.
type BlueGreenSpec struct {
	Smoke        []SmokeCase
	KeepPrevious time.Duration
	PreSwitch    *Mirror
}

// Mirror copies Percent of live requests to the candidate for Duration.
type Mirror struct {
	Duration time.Duration
	Percent  float64
}

// ShadowSpec mirrors traffic to the candidate first, then continues with
// canary steps.
type ShadowSpec struct {
	Mirror
	Steps []CanaryStep
}

// ABTestSpec splits traffic by a sticky request key for a fixed time
// and reports each metric per arm.
type ABTestSpec struct {
	Key      domain.StickyKey
	Duration time.Duration
	Split    int // the candidate's percent
	Winner   Winner
}

// specFile is a Rollout as written in YAML.
type specFile struct {
	Kind             string    `yaml:"kind"`
	Model            string    `yaml:"model"`
	Environment      string    `yaml:"environment"`
	Candidate        yaml.Node `yaml:"candidate"`
	Strategy         yaml.Node `yaml:"strategy"`
	Analysis         yaml.Node `yaml:"analysis"`
	Rollback         string    `yaml:"rollback"`
	ProgressDeadline string    `yaml:"progressDeadline"`
}

type strategyFile struct {
	Canary    yaml.Node `yaml:"canary"`
	BlueGreen yaml.Node `yaml:"blueGreen"`
	Shadow    yaml.Node `yaml:"shadow"`
	ABTest    yaml.Node `yaml:"abTest"`
}

// parser carries the file name every error names.
type parser struct{ file string }

func (p parser) errorf(line int, format string, args ...any) error {
	return yamldoc.Errorf(p.file, line, format, args...)
}

// decode is DecodeStrict with the error placed and prefixed with where.
func (p parser) decode(n *yaml.Node, v any, where string) error {
	if err := yamldoc.DecodeStrict(n, v); err != nil {
		line := yamldoc.Line(err)
		if line == 0 {
			line = n.Line
		}
		return p.errorf(line, "%s: %s", where, yamldoc.Reason(err))
	}
	return nil
}

// ParseSpec reads a Rollout document. file names it in errors; every
// refusal is a *yamldoc.Error with the line of the offending field.
func ParseSpec(file string, data []byte) (Spec, error) {
	p := parser{file}
	root, err := yamldoc.Root(file, data, MaxSpecBytes, "a rollout")
	if err != nil {
		return Spec{}, err
	}
	var f specFile
	if err := p.decode(root, &f, "rollout"); err != nil {
		return Spec{}, err
	}
	line := func(key string) int { return yamldoc.KeyLine(root, key) }
	if f.Kind != "Rollout" {
		return Spec{}, p.errorf(line("kind"), "kind is %q; this document needs kind: Rollout", truncate(f.Kind, 40))
	}
	s := Spec{Model: f.Model, Environment: f.Environment, Source: string(data)}
	if err := domain.ValidateName("model", f.Model); err != nil {
		return Spec{}, p.errorf(line("model"), "%s", yamldoc.Reason(err))
	}
	if err := domain.ValidateName("environment", f.Environment); err != nil {
		return Spec{}, p.errorf(line("environment"), "%s", yamldoc.Reason(err))
	}
	if !yamldoc.Present(f.Candidate) {
		return Spec{}, p.errorf(0, "candidate is missing: give the version to roll out, \"@alias\" or a number")
	}
	if s.Candidate, err = parseCandidate(f.Candidate.Value, f.Candidate.Kind); err != nil {
		return Spec{}, p.errorf(f.Candidate.Line, "candidate: %s", yamldoc.Reason(err))
	}
	switch f.Rollback {
	case "", string(RollbackAutomatic):
		s.Rollback = RollbackAutomatic
	case string(RollbackManual):
		s.Rollback = RollbackManual
	default:
		return Spec{}, p.errorf(line("rollback"), "rollback is %q; it is automatic or manual", truncate(f.Rollback, 40))
	}
	s.ProgressDeadline = DefaultProgressDeadline
	if f.ProgressDeadline != "" {
		if s.ProgressDeadline, err = parseDuration(f.ProgressDeadline, MinProgressDeadline, MaxProgressDeadline); err != nil {
			return Spec{}, p.errorf(line("progressDeadline"), "progressDeadline: %s", err)
		}
	}
	if yamldoc.Present(f.Analysis) {
		a, err := p.analysisBlock(&f.Analysis)
		if err != nil {
			return Spec{}, err
		}
		s.Analysis = &a
	}
	if !yamldoc.Present(f.Strategy) {
		return Spec{}, p.errorf(0, "strategy is missing: give one of canary, blueGreen, shadow, abTest")
	}
	if err := p.strategy(&f.Strategy, &s); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// parseCandidate reads "@alias" or a version number.
func parseCandidate(v string, kind yaml.Kind) (CandidateRef, error) {
	if kind != yaml.ScalarNode {
		return CandidateRef{}, fmt.Errorf("candidate is \"@alias\" or a version number: %w", domain.ErrInvalid)
	}
	if name, ok := strings.CutPrefix(v, "@"); ok {
		if err := domain.ValidateName("alias", name); err != nil {
			return CandidateRef{}, err
		}
		return CandidateRef{Alias: name}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1_000_000_000 || strconv.Itoa(n) != v {
		return CandidateRef{}, fmt.Errorf("%q is neither \"@alias\" nor a version number from 1: %w", truncate(v, 40), domain.ErrInvalid)
	}
	return CandidateRef{Version: n}, nil
}

// parseDuration reads a Go duration ("30s", "1m30s", "2h") within
// [lo, hi].
func parseDuration(s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 5m or 1h", truncate(s, 40))
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s must be from %s to %s", d, lo, hi)
	}
	return d, nil
}

// strategy reads the strategy mapping: exactly one block.
func (p parser) strategy(n *yaml.Node, s *Spec) error {
	var f strategyFile
	if err := p.decode(n, &f, "strategy"); err != nil {
		return err
	}
	var given []string
	for _, c := range []struct {
		name Strategy
		node *yaml.Node
	}{{Canary, &f.Canary}, {BlueGreen, &f.BlueGreen}, {Shadow, &f.Shadow}, {ABTest, &f.ABTest}} {
		if !yamldoc.Present(*c.node) {
			continue
		}
		given = append(given, string(c.name))
		if len(given) > 1 {
			return p.errorf(yamldoc.KeyLine(n, string(c.name)), "strategy gives %s; a rollout has exactly one strategy", strings.Join(given, " and "))
		}
		s.Strategy = c.name
	}
	switch s.Strategy {
	case Canary:
		c, err := p.canary(&f.Canary, s.Analysis != nil)
		s.Canary = &c
		return err
	case BlueGreen:
		b, err := p.blueGreen(&f.BlueGreen, s.Analysis != nil)
		s.BlueGreen = &b
		return err
	case Shadow:
		sh, err := p.shadow(&f.Shadow, s.Analysis != nil)
		s.Shadow = &sh
		return err
	case ABTest:
		ab, err := p.abTest(&f.ABTest, s.Analysis != nil)
		s.ABTest = &ab
		return err
	}
	return p.errorf(n.Line, "strategy is empty: give one of canary, blueGreen, shadow, abTest")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
