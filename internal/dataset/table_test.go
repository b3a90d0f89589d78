package dataset

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func load(t *testing.T, in string, f Format, roles Roles) (*Table, error) {
	t.Helper()
	s, err := Inspect(strings.NewReader(in), f, roles)
	if err != nil {
		return nil, err
	}
	return Read(strings.NewReader(in), s)
}

func TestReadCSV(t *testing.T) {
	in := "a,b,seg,y\n1.5,true,x,1\n,false,\"y, z\",0\n3,TRUE,x,1\n"
	tb, err := load(t, in, FormatCSV, Roles{Label: "y", Segments: []string{"seg"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := tb.Numbers("a")
	if err != nil {
		t.Fatal(err)
	}
	if a[0] != 1.5 || !math.IsNaN(a[1]) || a[2] != 3 {
		t.Errorf("a = %v", a)
	}
	b, err := tb.Numbers("b")
	if err != nil || !slices.Equal(b, []float64{1, 0, 1}) {
		t.Errorf("b = %v, %v", b, err)
	}
	if got := tb.Text("seg"); !slices.Equal(got, []string{"x", "y, z", "x"}) {
		t.Errorf("seg = %q", got)
	}
	if _, err := tb.Numbers("seg"); err == nil || !strings.Contains(err.Error(), "row 1 (line 2)") {
		t.Errorf("text as numbers: %v", err)
	}
	labels, task, err := tb.Labels("")
	if err != nil || task != domain.TaskClassification || !slices.Equal(labels, []float64{1, 0, 1}) {
		t.Errorf("labels = %v %s %v", labels, task, err)
	}
	if !slices.Equal(tb.Line, []int{2, 3, 4}) {
		t.Errorf("lines = %v", tb.Line)
	}
}

func TestReadJSONL(t *testing.T) {
	in := `{"x": 1, "s": "a", "y": 2.5}

{"x": null, "s": "b", "y": -1}
{"s": "a", "y": 0}
`
	tb, err := load(t, in, FormatJSONL, Roles{Label: "y", Segments: []string{"s"}})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tb.Numbers("x")
	if x[0] != 1 || !math.IsNaN(x[1]) || !math.IsNaN(x[2]) {
		t.Errorf("x = %v", x)
	}
	labels, task, err := tb.Labels("")
	if err != nil || task != domain.TaskRegression || !slices.Equal(labels, []float64{2.5, -1, 0}) {
		t.Errorf("labels = %v %s %v", labels, task, err)
	}
	if !slices.Equal(tb.Line, []int{1, 3, 4}) {
		t.Errorf("lines = %v", tb.Line)
	}
}

// TestLabelRefusals: a label that is missing, NaN, infinite or text is
// refused with the row (and line) that holds it.
func TestLabelRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		format   Format
		want     string
	}{
		{"missing csv", "a,y\n1,0\n2,1\n3,\n4,\n", FormatCSV, "missing in 2 rows (the first at row 3)"},
		{"null jsonl", `{"a":1,"y":0}` + "\n" + `{"a":2,"y":null}` + "\n", FormatJSONL, "missing in 1 rows (the first at row 2)"},
		{"absent jsonl", `{"a":1,"y":0}` + "\n" + `{"a":2}` + "\n" + `{"a":2,"y":1}` + "\n", FormatJSONL, "(the first at row 2)"},
		{"NaN csv", "a,y\n1,0\n2,NaN\n3,1\n", FormatCSV, `row 2 (line 3) is NaN`},
		{"nan jsonl string", `{"a":1,"y":0}` + "\n" + `{"a":1,"y":"nan"}` + "\n", FormatJSONL, `row 2 (line 2) is nan`},
		{"inf csv", "a,y\n1,0\n2,1\n3,+Inf\n", FormatCSV, `row 3 (line 4)`},
		{"text csv", "a,y\n1,yes\n", FormatCSV, `row 1 (line 2) holds "yes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := load(t, tc.in, tc.format, Roles{Label: "y"})
			if err == nil {
				_, _, err = tb.Labels("")
			}
			if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// FuzzRead: whatever Inspect accepts, Read reads to the same row count
// without panicking, and Labels either refuses or returns one per row.
func FuzzRead(f *testing.F) {
	f.Add("a,y\n1,0\n2,1\n", true)
	f.Add("a,\"b,c\",y\n\"x\"\"y\",2,1\n", true)
	f.Add(`{"a":1,"y":0}`+"\n"+`{"a":"s","y":1}`, false)
	f.Add(`{"y":NaN}`, false)
	f.Fuzz(func(t *testing.T, in string, csvFormat bool) {
		format := FormatJSONL
		if csvFormat {
			format = FormatCSV
		}
		s, err := Inspect(strings.NewReader(in), format, Roles{Label: "y"})
		if err != nil {
			return
		}
		tb, err := Read(strings.NewReader(in), s)
		if err != nil {
			t.Fatalf("Inspect accepted what Read refuses: %v", err)
		}
		if tb.Rows() != s.Rows {
			t.Fatalf("Read %d rows, Inspect %d", tb.Rows(), s.Rows)
		}
		labels, _, err := tb.Labels("")
		if err == nil && len(labels) != s.Rows {
			t.Fatalf("%d labels for %d rows", len(labels), s.Rows)
		}
		for _, c := range s.Columns {
			if len(tb.Text(c.Name)) != s.Rows {
				t.Fatalf("column %q has %d cells for %d rows", c.Name, len(tb.Text(c.Name)), s.Rows)
			}
		}
	})
}
