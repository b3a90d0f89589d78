package rollout

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSmokeCheck(t *testing.T) {
	c := SmokeCase{Name: "row", Expect: json.RawMessage(`{"model_name":"m","outputs":[{"name":"p","data":[0.5,1]}]}`), Tolerance: 0.01}
	for _, tc := range []struct {
		answer, err string
	}{
		{`{"model_name":"m","id":"x","outputs":[{"name":"p","datatype":"FP64","data":[0.505,1.0]}]}`, ""},
		{`{"model_name":"m","outputs":[{"name":"p","data":[0.52,1]}]}`, "at $.outputs[0].data[0]: expected 0.5 (±0.01), got 0.52"},
		{`{"model_name":"m","outputs":[{"name":"p","data":[0.5]}]}`, "at $.outputs[0].data: expected 2 elements, got 1"},
		{`{"model_name":"n","outputs":[{"name":"p","data":[0.5,1]}]}`, `at $.model_name: expected "m", got "n"`},
		{`{"outputs":[{"name":"p","data":[0.5,1]}]}`, `at $: field "model_name" is missing`},
		{`{"model_name":"m","outputs":{}}`, "at $.outputs: expected an array, got an object"},
		{`{"model_name":"m","outputs":[{"name":"p","data":["0.5",1]}]}`, `expected the number 0.5, got "0.5"`},
		{`[1]`, "at $: expected an object, got an array"},
		{`{"model_name":"m"} {}`, "the answer is not JSON"},
		{`not json`, "the answer is not JSON"},
	} {
		err := c.Check([]byte(tc.answer))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Check(%s) = %v, want nil", tc.answer, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Check(%s) = %v, want %q", tc.answer, err, tc.err)
		}
	}
	scalar := SmokeCase{Name: "s", Expect: json.RawMessage(`null`)}
	if err := scalar.Check([]byte(`null`)); err != nil {
		t.Errorf("null vs null: %v", err)
	}
	if err := scalar.Check([]byte(`false`)); err == nil {
		t.Error("null vs false passed")
	}
	bad := SmokeCase{Name: "b", Expect: json.RawMessage(`{`)}
	if err := bad.Check([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), "expected answer is not JSON") {
		t.Errorf("a broken expectation: %v", err)
	}
}

// TestSmokeFromYAML: the YAML of a smoke case becomes the JSON sent and
// expected, and the answer the model gives passes its own check.
func TestSmokeFromYAML(t *testing.T) {
	doc := `kind: Rollout
model: m
environment: production
candidate: 2
strategy:
  blueGreen:
    smoke:
      - request: {inputs: [{name: x, shape: [1, 2], datatype: FP64, data: [1.5, -2]}]}
        expect: {outputs: [{data: [1], name: label}]}
`
	s, err := ParseSpec("bg.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := s.BlueGreen.Smoke[0]
	if string(c.Request) != `{"inputs":[{"data":[1.5,-2],"datatype":"FP64","name":"x","shape":[1,2]}]}` {
		t.Errorf("request %s", c.Request)
	}
	if c.Name != "smoke 1" || c.Tolerance != DefaultSmokeTolerance {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Check([]byte(`{"model_name":"m","outputs":[{"name":"label","shape":[1],"data":[1.0000001]}]}`)); err != nil {
		t.Error(err)
	}
	if err := c.Check([]byte(`{"outputs":[{"name":"label","data":[0]}]}`)); err == nil {
		t.Error("a wrong label passed")
	}
}
