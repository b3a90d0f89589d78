package xgboost

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

// tinyModel is a hand-written one-tree model in XGBoost 1.7's JSON layout:
//
//	node 0: x0 < 0.5 (missing → left)
//	  node 1: x1 < 1.5 (missing → right)
//	    node 3: leaf 1
//	    node 4: leaf 2
//	  node 2: leaf 3
//
// with base_score 0.5 and reg:squarederror, so predictions are leaf + 0.5.
const tinyModel = `{"learner":{"attributes":{},"feature_names":["a","b"],"feature_types":["float","float"],
"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1","size_leaf_vector":"0"},
"tree_info":[0],"trees":[{"base_weights":[0,0,0,0,0],"categories":[],"categories_nodes":[],"categories_segments":[],
"categories_sizes":[],"default_left":[1,0,0,0,0],"id":0,"left_children":[1,3,-1,-1,-1],"loss_changes":[0,0,0,0,0],
"parents":[2147483647,0,0,1,1],"right_children":[2,4,-1,-1,-1],"split_conditions":[5E-1,1.5E0,3E0,1E0,2E0],
"split_indices":[0,1,0,0,0],"split_type":[0,0,0,0,0],"sum_hessian":[1,1,1,1,1],
"tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"5","size_leaf_vector":"0"}}]},"name":"gbtree"},
"learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"2","num_target":"1"},
"objective":{"name":"reg:squarederror","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[1,7,4]}`

func loadString(s string) (*Model, error) { return Load(strings.NewReader(s)) }

// mutate replaces exactly one occurrence of old in tinyModel.
func mutate(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(tinyModel, old) != 1 {
		t.Fatalf("%q occurs %d times in tinyModel", old, strings.Count(tinyModel, old))
	}
	return strings.Replace(tinyModel, old, new, 1)
}

func TestTinyModelSemantics(t *testing.T) {
	m, err := loadString(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	// 0.5 - 1e-12 is below the threshold in float64 but rounds to it in
	// float32, and XGBoost compares in float32: it goes right.
	justBelow := 0.5 - 1e-12
	for _, c := range []struct {
		name string
		row  []float64
		want float64
	}{
		{"left left", []float64{0, 0}, 1.5},
		{"left right", []float64{0, 2}, 2.5},
		{"right", []float64{1, 0}, 3.5},
		{"equal goes right", []float64{0.5, 0}, 3.5},
		{"float32 rounding goes right", []float64{justBelow, 0}, 3.5},
		{"below in float32 goes left", []float64{0.4999999, 0}, 1.5},
		{"missing x0 defaults left, missing x1 defaults right", []float64{nan, nan}, 2.5},
		{"+Inf goes right", []float64{math.Inf(1), 0}, 3.5},
		{"-Inf goes left", []float64{math.Inf(-1), 0}, 1.5},
	} {
		got, err := m.PredictRow(c.row, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: %v → %v, want %v", c.name, c.row, got, c.want)
		}
	}
	if got := m.FeatureNames(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("FeatureNames = %v", got)
	}
	if m.NumFeatures() != 2 || m.NumOutputs() != 1 || m.NumTrees() != 1 || m.Objective() != ObjectiveSquaredError {
		t.Errorf("NumFeatures %d NumOutputs %d NumTrees %d Objective %q",
			m.NumFeatures(), m.NumOutputs(), m.NumTrees(), m.Objective())
	}
}

func TestBaseScoreForms(t *testing.T) {
	for _, c := range []struct {
		score     string
		objective string
		want      float64 // prediction for row {1, 0}: leaf 3 + base margin
	}{
		{"5E-1", ObjectiveSquaredError, 3.5},
		{"[5E-1]", ObjectiveSquaredError, 3.5},
		{"1.25E1", ObjectiveSquaredError, 15.5},
		{"5E-1", ObjectiveBinaryLogitRaw, 3.5}, // logitraw keeps base_score as a margin
		{"5E-1", ObjectiveBinaryLogistic, float64(sigmoid(3))},
		{"[2E-1]", ObjectiveRegLogistic, float64(sigmoid(3 + float32(-math.Log(4))))},
	} {
		src := strings.Replace(mutate(t, `"base_score":"5E-1"`, `"base_score":"`+c.score+`"`),
			`"name":"reg:squarederror"`, `"name":"`+c.objective+`"`, 1)
		m, err := loadString(src)
		if err != nil {
			t.Fatalf("%s %s: %v", c.objective, c.score, err)
		}
		got, _ := m.PredictRow([]float64{1, 0}, nil)
		if math.Abs(got[0]-c.want) > 1e-7 {
			t.Errorf("%s base_score %s: got %v, want %v", c.objective, c.score, got[0], c.want)
		}
	}
}

// TestUnreachableNodesDropped: XGBoost's pruner leaves deleted nodes in the
// arrays; nothing reaches them and they must not break loading.
func TestUnreachableNodesDropped(t *testing.T) {
	src := tinyModel
	for _, r := range [][2]string{
		{`"left_children":[1,3,-1,-1,-1]`, `"left_children":[1,3,-1,-1,-1,-1]`},
		{`"right_children":[2,4,-1,-1,-1]`, `"right_children":[2,4,-1,-1,-1,-1]`},
		{`"split_conditions":[5E-1,1.5E0,3E0,1E0,2E0]`, `"split_conditions":[5E-1,1.5E0,3E0,1E0,2E0,9E0]`},
		{`"split_indices":[0,1,0,0,0]`, `"split_indices":[0,1,0,0,0,0]`},
		{`"default_left":[1,0,0,0,0]`, `"default_left":[1,0,0,0,0,0]`},
		{`"num_nodes":"5"`, `"num_nodes":"6"`},
	} {
		src = strings.Replace(src, r[0], r[1], 1)
	}
	m, err := loadString(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.nodes) != 1+5 { // zeroLeaf and the reachable nodes
		t.Errorf("%d nodes kept, want zeroLeaf and the 5 reachable ones", len(m.nodes))
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct{ file, names string }{
		{"testdata/gblinear.json", `booster "gblinear" is not supported`},
		{"testdata/dart.json", `booster "dart" is not supported`},
		{"testdata/categorical.json", "categorical splits are not supported"},
	} {
		data, err := readTestdata(c.file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(strings.NewReader(string(data)))
		if !errors.Is(err, domain.ErrInvalid) || err == nil || !strings.Contains(err.Error(), c.names) {
			t.Errorf("%s: error %v, want ErrInvalid naming %q", c.file, err, c.names)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name, src, wantErr string
	}{
		{"empty", "", "not an XGBoost JSON model"},
		{"truncated", tinyModel[:len(tinyModel)/2], "not an XGBoost JSON model"},
		{"not an object", "[1,2,3]", "not an XGBoost JSON model"},
		{"trailing garbage", tinyModel + "}", "not an XGBoost JSON model"},
		{"no learner", `{"version":[1,7,4]}`, "no learner object"},
		{"ubjson", "{U\x07learner{", "not an XGBoost JSON model"},
		{"unknown objective", mutate(t, `"name":"reg:squarederror"`, `"name":"reg:gamma"`), `objective "reg:gamma" is not supported`},
		{"ranking objective", mutate(t, `"name":"reg:squarederror"`, `"name":"rank:pairwise"`), `objective "rank:pairwise" is not supported`},
		{"unknown booster", mutate(t, `"name":"gbtree"`, `"name":"gbforest"`), `booster "gbforest" is not supported`},
		{"multi-target", mutate(t, `"num_target":"1"`, `"num_target":"2"`), "multi-target models are not supported"},
		{"vector leaves", mutate(t, `"num_trees":"1","size_leaf_vector":"0"`, `"num_trees":"1","size_leaf_vector":"3"`), "multi-target trees are not supported"},
		{"categorical split_type", mutate(t, `"split_type":[0,0,0,0,0]`, `"split_type":[1,0,0,0,0]`), "categorical splits are not supported"},
		{"categorical nodes", mutate(t, `"categories_nodes":[]`, `"categories_nodes":[0]`), "categorical splits are not supported"},
		{"missing num_feature", mutate(t, `"num_feature":"2","num_target"`, `"num_target"`), "num_feature is missing"},
		{"bad num_feature", mutate(t, `"num_feature":"2","num_target"`, `"num_feature":"-2","num_target"`), "num_feature"},
		{"huge num_class", mutate(t, `"num_class":"0"`, `"num_class":"2000000000"`), "num_class"},
		{"num_class on single output", mutate(t, `"num_class":"0"`, `"num_class":"3"`), "single-output"},
		{"missing base_score", mutate(t, `"base_score":"5E-1",`, ``), "base_score is missing"},
		{"bad base_score", mutate(t, `"base_score":"5E-1"`, `"base_score":"half"`), "base_score"},
		{"logistic base_score out of range", strings.Replace(mutate(t, `"base_score":"5E-1"`, `"base_score":"1.5"`),
			`"name":"reg:squarederror"`, `"name":"binary:logistic"`, 1), "must be in (0, 1)"},
		{"feature names count", mutate(t, `"feature_names":["a","b"]`, `"feature_names":["a"]`), "feature_names"},
		{"num_trees mismatch", mutate(t, `"num_trees":"1"`, `"num_trees":"2"`), "num_trees"},
		{"tree_info length", mutate(t, `"tree_info":[0]`, `"tree_info":[0,0]`), "tree_info"},
		{"tree_info group", mutate(t, `"tree_info":[0]`, `"tree_info":[1]`), "tree_info group"},
		{"num_nodes mismatch", mutate(t, `"num_nodes":"5"`, `"num_nodes":"7"`), "num_nodes"},
		{"short right_children", mutate(t, `"right_children":[2,4,-1,-1,-1]`, `"right_children":[2,4,-1,-1]`), "right_children has 4 entries"},
		{"short split_conditions", mutate(t, `"split_conditions":[5E-1,1.5E0,3E0,1E0,2E0]`, `"split_conditions":[5E-1]`), "split_conditions has 1 entries"},
		{"no nodes", mutate(t, `"left_children":[1,3,-1,-1,-1]`, `"left_children":[]`), "no nodes"},
		{"cycle to root", mutate(t, `"left_children":[1,3,-1,-1,-1]`, `"left_children":[1,0,-1,-1,-1]`), "reached twice"},
		{"self loop", mutate(t, `"left_children":[1,3,-1,-1,-1]`, `"left_children":[1,1,-1,-1,-1]`), "reached twice"},
		{"shared child", mutate(t, `"right_children":[2,4,-1,-1,-1]`, `"right_children":[2,2,-1,-1,-1]`), "reached twice"},
		{"same child twice", mutate(t, `"right_children":[2,4,-1,-1,-1]`, `"right_children":[1,4,-1,-1,-1]`), "reached twice"},
		{"child out of range", mutate(t, `"left_children":[1,3,-1,-1,-1]`, `"left_children":[1,9,-1,-1,-1]`), "out of range"},
		{"negative child", mutate(t, `"right_children":[2,4,-1,-1,-1]`, `"right_children":[2,-7,-1,-1,-1]`), "out of range"},
		{"half leaf", mutate(t, `"right_children":[2,4,-1,-1,-1]`, `"right_children":[2,4,3,-1,-1]`), "no left child but right child"},
		{"feature out of range", mutate(t, `"split_indices":[0,1,0,0,0]`, `"split_indices":[0,2,0,0,0]`), "feature 2 out of range"},
		{"negative feature", mutate(t, `"split_indices":[0,1,0,0,0]`, `"split_indices":[-1,1,0,0,0]`), "feature -1 out of range"},
		{"NaN threshold", mutate(t, `"split_conditions":[5E-1,`, `"split_conditions":[NaN,`), "split condition is NaN"},
		{"NaN leaf", mutate(t, `3E0,1E0,2E0]`, `NaN,1E0,2E0]`), "leaf value NaN is not finite"},
		{"infinite leaf", mutate(t, `3E0,1E0,2E0]`, `-Infinity,1E0,2E0]`), "not finite"},
		{"float out of range", mutate(t, `3E0,1E0,2E0]`, `1E300,1E0,2E0]`), "not a float32"},
		{"bad default_left", mutate(t, `"default_left":[1,0,0,0,0]`, `"default_left":[2,0,0,0,0]`), "default_left"},
		{"gbtree model not an object", mutate(t, `"tree_info":[0],"trees":[`, `"tree_info":[0],"trees":5,"x":[`), "gbtree model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := loadString(c.src)
			if err == nil {
				t.Fatalf("loaded %+v, want an error containing %q", m, c.wantErr)
			}
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("error %v does not wrap domain.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, c.wantErr)
			}
		})
	}
}

func TestQuoteNonFinite(t *testing.T) {
	for in, want := range map[string]string{
		`[1,NaN,-Infinity,Infinity]`: `[1,"NaN","-Infinity","Infinity"]`,
		`[inf,-inf,-1]`:              `["Infinity","-Infinity",-1]`,
		`{"NaN":"a NaN \"Infinity"}`: `{"NaN":"a NaN \"Infinity"}`,
		`{"k":NaN}`:                  `{"k":"NaN"}`,
		`plain`:                      `plain`,
	} {
		if got := string(quoteNonFinite([]byte(in))); got != want {
			t.Errorf("quoteNonFinite(%s) = %s, want %s", in, got, want)
		}
	}
}
