package dataset

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestInspectCSV(t *testing.T) {
	in := "\ufeffage,income,city,member,label\n34,52000.5,Oslo,true,1\n,61000,Bergen,false,0\n29,1e5,\"Trondheim, N\",TRUE,1\n"
	s, err := Inspect(strings.NewReader(in), FormatCSV, Roles{Label: "label", Segments: []string{"city"}, Sensitive: "member"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Column{{"age", TypeNumber, 1}, {"income", TypeNumber, 0}, {"city", TypeString, 0}, {"member", TypeBool, 0}, {"label", TypeNumber, 0}}
	if s.Rows != 3 || len(s.Columns) != len(want) {
		t.Fatalf("schema = %+v", s)
	}
	for i, c := range want {
		if s.Columns[i] != c {
			t.Errorf("column %d = %+v, want %+v", i, s.Columns[i], c)
		}
	}
	if s.Label != "label" || s.Segments[0] != "city" || s.Sensitive != "member" || s.Format != FormatCSV {
		t.Fatalf("roles = %+v", s)
	}
}

func TestInspectJSONL(t *testing.T) {
	in := `{"x": 1.5, "seg": "a", "y": 0}
{"x": null, "seg": "b", "y": 1, "extra": true}

{"x": 3, "seg": "a", "y": 1}
`
	s, err := Inspect(strings.NewReader(in), FormatJSONL, Roles{Label: "y", Segments: []string{"seg"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Column{{"extra", TypeBool, 2}, {"seg", TypeString, 0}, {"x", TypeNumber, 1}, {"y", TypeNumber, 0}}
	if s.Rows != 3 || len(s.Columns) != 4 {
		t.Fatalf("schema = %+v", s)
	}
	for i, c := range want {
		if s.Columns[i] != c {
			t.Errorf("column %d = %+v, want %+v", i, s.Columns[i], c)
		}
	}
}

func TestInspectTheExampleHoldout(t *testing.T) {
	f, err := os.Open("../../examples/breast-cancer/holdout.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Inspect(f, FormatCSV, Roles{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 143 || len(s.Columns) != 31 {
		t.Fatalf("holdout: %d rows, %d columns", s.Rows, len(s.Columns))
	}
	for _, c := range s.Columns {
		if c.Type != TypeNumber {
			t.Errorf("column %s is %s", c.Name, c.Type)
		}
	}
}

func TestInspectRefusals(t *testing.T) {
	cases := []struct {
		name, in string
		f        Format
		roles    Roles
		msg      string
	}{
		{"empty csv", "", FormatCSV, Roles{Label: "y"}, "empty"},
		{"header only", "a,y\n", FormatCSV, Roles{Label: "y"}, "no rows"},
		{"duplicate column", "a,a,y\n1,2,3\n", FormatCSV, Roles{Label: "y"}, "appears twice"},
		{"empty column name", "a,,y\n1,2,3\n", FormatCSV, Roles{Label: "y"}, "empty name"},
		{"ragged row", "a,y\n1,2,3\n", FormatCSV, Roles{Label: "y"}, "wrong number of fields"},
		{"no label given", "a,y\n1,2\n", FormatCSV, Roles{}, "--label"},
		{"unknown label", "a,y\n1,2\n", FormatCSV, Roles{Label: "target"}, `"target" is not in the dataset`},
		{"missing label values", "a,y\n1,\n2,1\n", FormatCSV, Roles{Label: "y"}, "missing in 1 rows"},
		{"unknown segment", "a,y\n1,2\n", FormatCSV, Roles{Label: "y", Segments: []string{"region"}}, `"region"`},
		{"label as segment", "a,y\n1,2\n", FormatCSV, Roles{Label: "y", Segments: []string{"y"}}, "both the label and the segment column"},
		{"unknown sensitive", "a,y\n1,2\n", FormatCSV, Roles{Label: "y", Sensitive: "age"}, `sensitive column "age" is not in the dataset`},
		{"label as sensitive", "a,y\n1,2\n", FormatCSV, Roles{Label: "y", Sensitive: "y"}, "both the label and the sensitive column"},
		{"not an object", "[1,2]\n", FormatJSONL, Roles{Label: "y"}, "not a JSON object"},
		{"nested", `{"y":1,"a":{"b":2}}` + "\n", FormatJSONL, Roles{Label: "y"}, "nested"},
		{"bad json", `{"y":1` + "\n", FormatJSONL, Roles{Label: "y"}, "line 1"},
		{"unknown format", "a\n", Format("parquet"), Roles{Label: "a"}, "parquet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Inspect(strings.NewReader(c.in), c.f, c.roles)
			if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, c.msg)
			}
		})
	}
}

// FuzzInspect: arbitrary files never panic, and an accepted schema is
// consistent (unique names, missing counts within the row count).
func FuzzInspect(f *testing.F) {
	f.Add("a,y\n1,0\n2,1\n", true)
	f.Add("a,\"b,c\",y\n\"x\"\"y\",2,1\n", true)
	f.Add(`{"a":1,"y":0}`+"\n"+`{"a":"s","y":1}`, false)
	f.Add(`{"y":null}`, false)
	f.Fuzz(func(t *testing.T, in string, csvFormat bool) {
		format := FormatJSONL
		if csvFormat {
			format = FormatCSV
		}
		s, err := Inspect(strings.NewReader(in), format, Roles{Label: "y"})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range s.Columns {
			if seen[c.Name] || c.Missing < 0 || c.Missing > s.Rows {
				t.Fatalf("inconsistent schema %+v", s)
			}
			seen[c.Name] = true
		}
		if !seen["y"] {
			t.Fatal("accepted without its label column")
		}
	})
}
