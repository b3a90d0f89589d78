package yamldoc_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/yamldoc"
)

type doc struct {
	Kind string `yaml:"kind"`
	N    int    `yaml:"n"`
}

func TestRootAndDecodeStrict(t *testing.T) {
	root, err := yamldoc.Root("f.yaml", []byte("kind: K\nn: 3\n"), 100, "a doc")
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := yamldoc.DecodeStrict(root, &d); err != nil || d.Kind != "K" || d.N != 3 || yamldoc.KeyLine(root, "n") != 2 {
		t.Fatalf("decode: %+v %v", d, err)
	}
	cases := []struct {
		in   string
		line int
		want string
	}{
		{"kind: K\nm: 1\n", 2, `unknown field "m"; allowed here: kind, n`},
		{"kind: K\nkind: L\n", 2, `field "kind" is given twice`},
		{"kind: K\nn: x\n", 2, "cannot unmarshal"},
	}
	for _, c := range cases {
		root, err := yamldoc.Root("f.yaml", []byte(c.in), 100, "a doc")
		if err == nil {
			err = yamldoc.DecodeStrict(root, &d)
		}
		if yamldoc.Line(err) != c.line || !strings.Contains(yamldoc.Reason(err), c.want) {
			t.Errorf("%q: line %d %q, want %d %q", c.in, yamldoc.Line(err), yamldoc.Reason(err), c.line, c.want)
		}
	}
	refused := map[string]string{
		"kind: [\n":              "f.yaml:1: not valid YAML",
		"- a\n":                  "f.yaml:1: a doc is a mapping of fields",
		"a: 1\n---\nb: 2\n":      "f.yaml:2: more than one YAML document",
		strings.Repeat("#", 101): "f.yaml: the document is 101 bytes, at most 100 allowed",
	}
	for in, want := range refused {
		_, err := yamldoc.Root("f.yaml", []byte(in), 100, "a doc")
		if _, ok := errors.AsType[*yamldoc.Error](err); !ok || !errors.Is(err, domain.ErrInvalid) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if k, err := yamldoc.Kind("f.yaml", []byte("kind: Rollout\nx: [1\n")); err == nil || k != "" {
		t.Errorf("kind of a broken document: %q %v", k, err)
	}
	if k, _ := yamldoc.Kind("f.yaml", []byte("kind: Rollout\n")); k != "Rollout" {
		t.Errorf("kind = %q", k)
	}
}
