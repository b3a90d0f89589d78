package dataset

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// TestLabelTask: whole-number labels with 3 to 20 classes are refused when
// the task is inferred (they look like a multi-class label, which slipway
// does not evaluate) and read as quantities with regression; classification
// needs 0/1 labels; counts beyond 20 values or fractions stay regression.
func TestLabelTask(t *testing.T) {
	csv := func(labels ...string) string {
		return "x,y\n" + strings.Join(func() []string {
			var rows []string
			for _, l := range labels {
				rows = append(rows, "1,"+l)
			}
			return rows
		}(), "\n") + "\n"
	}
	many := make([]string, 25)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	cases := []struct {
		name   string
		in     string
		want   domain.Task
		task   domain.Task
		refuse string
	}{
		{"binary inferred", csv("0", "1", "1"), "", domain.TaskClassification, ""},
		{"three classes inferred", csv("0", "1", "2", "1"), "", "", "3 distinct whole numbers"},
		{"three classes as regression", csv("0", "1", "2", "1"), domain.TaskRegression, domain.TaskRegression, ""},
		{"three classes as classification", csv("0", "1", "2"), domain.TaskClassification, "", "row 3 (line 4) is 2; a classification label is 0, 1"},
		{"binary as regression", csv("0", "1"), domain.TaskRegression, domain.TaskRegression, ""},
		{"fractions", csv("0.5", "1", "2"), "", domain.TaskRegression, ""},
		{"negative whole numbers", csv("-1", "1", "2"), "", domain.TaskRegression, ""},
		{"more than 20 values", csv(many...), "", domain.TaskRegression, ""},
		{"unknown task", csv("0", "1"), "ranking", "", `task "ranking" is not classification or regression`},
	}
	for _, c := range cases {
		tb, err := load(t, c.in, FormatCSV, Roles{Label: "y"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, task, err := tb.Labels(c.want)
		switch {
		case c.refuse != "":
			if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), c.refuse) {
				t.Errorf("%s: %v, want a refusal containing %q", c.name, err, c.refuse)
			}
		case err != nil || task != c.task:
			t.Errorf("%s: task %q, %v; want %q", c.name, task, err, c.task)
		}
	}
}
