package rollout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/yamldoc"
)

// SmokeCase is one smoke request of a blue-green rollout: a JSON body the
// controller sends to the candidate's inference endpoint, and the answer
// expected back. Expect is a subset of the answer: every field it names
// must be there with the same value (numbers within Tolerance, arrays
// element by element); fields it does not name are not checked.
type SmokeCase struct {
	Name      string
	Request   json.RawMessage
	Expect    json.RawMessage
	Tolerance float64
}

// DefaultSmokeTolerance is the absolute difference allowed between an
// expected and an answered number.
const DefaultSmokeTolerance = 1e-6

const maxSmokeCases = 32

type smokeFile struct {
	Name      string    `yaml:"name"`
	Request   yaml.Node `yaml:"request"`
	Expect    yaml.Node `yaml:"expect"`
	Tolerance *float64  `yaml:"tolerance"`
}

func (p parser) smokeCase(n *yaml.Node, i int) (SmokeCase, error) {
	at := fmt.Sprintf("blueGreen smoke %d", i)
	var f smokeFile
	if err := p.decode(n, &f, at); err != nil {
		return SmokeCase{}, err
	}
	c := SmokeCase{Name: f.Name, Tolerance: DefaultSmokeTolerance}
	if c.Name == "" {
		c.Name = "smoke " + strconv.Itoa(i)
	}
	if len(c.Name) > 128 {
		return c, p.errorf(yamldoc.KeyLine(n, "name"), "%s: name is %d bytes, at most 128 allowed", at, len(c.Name))
	}
	if !yamldoc.Present(f.Request) || f.Request.Kind != yaml.MappingNode {
		return c, p.errorf(yamldoc.KeyLine(n, "request"), "%s: request must be the JSON body to send, written as a mapping", at)
	}
	if !yamldoc.Present(f.Expect) {
		return c, p.errorf(n.Line, "%s: expect is missing: the answer (or part of it) the candidate must give", at)
	}
	var err error
	if c.Request, err = nodeJSON(&f.Request); err != nil {
		return c, p.errorf(f.Request.Line, "%s: request: %s", at, err)
	}
	if c.Expect, err = nodeJSON(&f.Expect); err != nil {
		return c, p.errorf(f.Expect.Line, "%s: expect: %s", at, err)
	}
	if f.Tolerance != nil {
		if t := *f.Tolerance; math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
			return c, p.errorf(yamldoc.KeyLine(n, "tolerance"), "%s: tolerance %v must be a finite number from 0", at, t)
		}
		c.Tolerance = *f.Tolerance
	}
	return c, nil
}

// nodeJSON turns a YAML value into JSON: mappings with string keys,
// sequences, strings, finite numbers, booleans and null.
func nodeJSON(n *yaml.Node) (json.RawMessage, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s", yamldoc.Reason(err))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not expressible as JSON (keys must be strings, numbers finite)")
	}
	return b, nil
}

// Check compares an answer body with the expected one.
func (c SmokeCase) Check(answer []byte) error {
	var want, got any
	if err := decodeNumbers(c.Expect, &want); err != nil {
		return fmt.Errorf("smoke %q: the expected answer is not JSON: %w", c.Name, err)
	}
	if err := decodeNumbers(answer, &got); err != nil {
		return fmt.Errorf("smoke %q: the answer is not JSON: %w", c.Name, err)
	}
	if err := subset(want, got, "$", c.Tolerance); err != nil {
		return fmt.Errorf("smoke %q: %w", c.Name, err)
	}
	return nil
}

func decodeNumbers(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// subset reports where got differs from want; want's objects may leave
// fields out, its arrays may not leave elements out.
func subset(want, got any, path string, tol float64) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("at %s: expected an object, got %s", path, describe(got))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("at %s: field %q is missing", path, k)
			}
			if err := subset(w[k], gv, path+"."+k, tol); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("at %s: expected an array, got %s", path, describe(got))
		}
		if len(g) != len(w) {
			return fmt.Errorf("at %s: expected %d elements, got %d", path, len(w), len(g))
		}
		for i := range w {
			if err := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i), tol); err != nil {
				return err
			}
		}
		return nil
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return fmt.Errorf("at %s: expected the number %s, got %s", path, w, describe(got))
		}
		wf, err1 := w.Float64()
		gf, err2 := g.Float64()
		if err1 != nil || err2 != nil || math.Abs(wf-gf) > tol {
			return fmt.Errorf("at %s: expected %s (±%g), got %s", path, w, tol, g)
		}
		return nil
	}
	if want != got {
		return fmt.Errorf("at %s: expected %s, got %s", path, describe(want), describe(got))
	}
	return nil
}

func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	case string:
		return strconv.Quote(truncate(x, 40))
	default:
		return fmt.Sprint(x)
	}
}
