package xgboost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// MaxModelBytes bounds how much Load reads: a model file larger than this is
// refused rather than read into memory.
const MaxModelBytes = 512 << 20

// maxClasses bounds num_class so that a tiny malicious file cannot make Load
// allocate per-class state for billions of classes.
const maxClasses = 1 << 16

// The subset of XGBoost's JSON model format the evaluator reads. Numbers the
// format stores as strings (learner_model_param, tree_param) stay strings.
type jsonDoc struct {
	Version []int        `json:"version"`
	Learner *jsonLearner `json:"learner"`
}

type jsonLearner struct {
	FeatureNames []string `json:"feature_names"`
	ModelParam   struct {
		BaseScore  *string `json:"base_score"`
		NumClass   string  `json:"num_class"`
		NumFeature *string `json:"num_feature"`
		NumTarget  string  `json:"num_target"`
	} `json:"learner_model_param"`
	Objective struct {
		Name string `json:"name"`
	} `json:"objective"`
	Booster *struct {
		Name  string          `json:"name"`
		Model json.RawMessage `json:"model"`
	} `json:"gradient_booster"`
}

type jsonGBTree struct {
	Param struct {
		NumTrees       string `json:"num_trees"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"gbtree_model_param"`
	TreeInfo []int64    `json:"tree_info"`
	Trees    []jsonTree `json:"trees"`
}

type jsonTree struct {
	Param struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
	Left            []int64 `json:"left_children"`
	Right           []int64 `json:"right_children"`
	SplitIndices    []int64 `json:"split_indices"`
	SplitConditions []f32   `json:"split_conditions"`
	DefaultLeft     []flag  `json:"default_left"`
	SplitType       []int64 `json:"split_type"`
	CategoriesNodes []int64 `json:"categories_nodes"`
}

// flag reads default_left entries, which XGBoost writes as 0/1 (and other
// writers as booleans).
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "0", "false":
		*f = false
	case "1", "true":
		*f = true
	default:
		return fmt.Errorf("default_left entry %.20s is not 0, 1, true or false", b)
	}
	return nil
}

// invalid builds an error that names the problem and wraps domain.ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("xgboost model: "+format+": %w", append(args, domain.ErrInvalid)...)
}

// Load parses a model saved by XGBoost's Booster.save_model("….json") and
// prepares it for prediction. Anything the evaluator cannot reproduce
// exactly is refused with an error wrapping domain.ErrInvalid that names
// the unsupported feature; a file that is not a well-formed tree ensemble
// (indices out of range, cycles, mismatched arrays) is refused the same way.
func Load(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("xgboost model: read: %w", err)
	}
	if len(data) > MaxModelBytes {
		return nil, invalid("larger than %d bytes", MaxModelBytes)
	}
	var doc jsonDoc
	if err := json.Unmarshal(quoteNonFinite(data), &doc); err != nil {
		return nil, invalid("not an XGBoost JSON model (UBJSON and the legacy binary format are not supported; save with a .json name): %v", err)
	}
	if doc.Learner == nil {
		return nil, invalid("no learner object")
	}
	return build(doc.Learner)
}

func build(l *jsonLearner) (*Model, error) {
	obj, ok := objectives[l.Objective.Name]
	if !ok {
		return nil, invalid("objective %q is not supported (supported: %s)", l.Objective.Name, supportedObjectives())
	}
	if l.Booster == nil {
		return nil, invalid("no gradient_booster object")
	}
	switch l.Booster.Name {
	case "gbtree":
	case "dart":
		return nil, invalid(`booster "dart" is not supported: only gbtree models are evaluated (dart weights trees by weight_drop)`)
	case "gblinear":
		return nil, invalid(`booster "gblinear" is not supported: only gbtree models are evaluated`)
	default:
		return nil, invalid("booster %q is not supported: only gbtree models are evaluated", l.Booster.Name)
	}

	p := l.ModelParam
	if p.NumFeature == nil {
		return nil, invalid("learner_model_param.num_feature is missing")
	}
	numFeature, err := paramInt("num_feature", *p.NumFeature, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	numClass, err := paramInt("num_class", p.NumClass, maxClasses)
	if err != nil {
		return nil, err
	}
	numTarget, err := paramInt("num_target", p.NumTarget, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	if numTarget > 1 {
		return nil, invalid("multi-target models are not supported (num_target=%d)", numTarget)
	}
	groups := 1
	switch {
	case obj.multi && numClass < 1:
		return nil, invalid("objective %q needs num_class >= 1, got %d", l.Objective.Name, numClass)
	case obj.multi:
		groups = numClass
	case numClass > 1:
		return nil, invalid("objective %q is single-output but num_class is %d", l.Objective.Name, numClass)
	}
	if len(l.FeatureNames) != 0 && len(l.FeatureNames) != numFeature {
		return nil, invalid("%d feature_names for num_feature %d", len(l.FeatureNames), numFeature)
	}
	if p.BaseScore == nil {
		return nil, invalid("learner_model_param.base_score is missing")
	}
	base, err := baseScores(*p.BaseScore, l.Objective.Name, groups)
	if err != nil {
		return nil, err
	}

	var gb jsonGBTree
	if err := json.Unmarshal(l.Booster.Model, &gb); err != nil {
		return nil, invalid("gbtree model: %v", err)
	}
	if n, err := paramInt("size_leaf_vector", gb.Param.SizeLeafVector, math.MaxInt32); err != nil {
		return nil, err
	} else if n > 1 {
		return nil, invalid("multi-target trees are not supported (size_leaf_vector=%d)", n)
	}
	if gb.Param.NumTrees != "" && gb.Param.NumTrees != strconv.Itoa(len(gb.Trees)) {
		return nil, invalid("num_trees is %s but %d trees are present", gb.Param.NumTrees, len(gb.Trees))
	}
	if len(gb.TreeInfo) != len(gb.Trees) {
		return nil, invalid("tree_info has %d entries for %d trees", len(gb.TreeInfo), len(gb.Trees))
	}

	m := &Model{
		objective:    l.Objective.Name,
		transform:    obj.transform,
		numFeature:   numFeature,
		featureNames: l.FeatureNames,
		base:         base,
		numTrees:     len(gb.Trees),
		// zeroLeaf: a leaf of value 0 at index 0.
		nodes:        []node{{cond: float32(math.NaN())}},
		leaf:         []float32{0},
		missingRight: []bool{false},
	}
	if obj.multi {
		m.numClass = numClass
	}
	type tree struct {
		root  uint32
		depth int
	}
	trees := make([][]tree, groups)
	for i := range gb.Trees {
		g := gb.TreeInfo[i]
		if g < 0 || g >= int64(groups) {
			return nil, invalid("tree %d: tree_info group %d out of range [0, %d)", i, g, groups)
		}
		root, depth, err := m.addTree(i, &gb.Trees[i])
		if err != nil {
			return nil, err
		}
		trees[g] = append(trees[g], tree{root, depth})
	}
	m.batches = make([][]treeBatch, groups)
	for g, ts := range trees {
		for len(ts) > 0 {
			b := treeBatch{} // roots default to zeroLeaf
			for k := 0; k < lanes && k < len(ts); k++ {
				b.roots[k], b.depth = ts[k].root, max(b.depth, ts[k].depth)
			}
			m.batches[g] = append(m.batches[g], b)
			ts = ts[min(lanes, len(ts)):]
		}
	}
	return m, nil
}

// addTree checks one tree and appends it to m.nodes, renumbered breadth
// first from the root so that children follow their parent and siblings
// are adjacent. Nodes the root does not reach (XGBoost's deleted nodes) are
// dropped. It returns the root's index and the depth of the deepest leaf.
func (m *Model) addTree(i int, t *jsonTree) (root uint32, depth int, err error) {
	n := len(t.Left)
	if n == 0 {
		return 0, 0, invalid("tree %d has no nodes", i)
	}
	if t.Param.NumNodes != strconv.Itoa(n) {
		return 0, 0, invalid("tree %d: num_nodes is %q but left_children has %d entries", i, t.Param.NumNodes, n)
	}
	for _, a := range []struct {
		name string
		got  int
	}{
		{"right_children", len(t.Right)}, {"split_indices", len(t.SplitIndices)},
		{"split_conditions", len(t.SplitConditions)}, {"default_left", len(t.DefaultLeft)},
	} {
		if a.got != n {
			return 0, 0, invalid("tree %d: %s has %d entries for %d nodes", i, a.name, a.got, n)
		}
	}
	if sl, err := paramInt("size_leaf_vector", t.Param.SizeLeafVector, math.MaxInt32); err != nil {
		return 0, 0, err
	} else if sl > 1 {
		return 0, 0, invalid("tree %d: multi-target trees are not supported (size_leaf_vector=%d)", i, sl)
	}
	if len(t.CategoriesNodes) > 0 {
		return 0, 0, invalid("tree %d: categorical splits are not supported", i)
	}
	for _, st := range t.SplitType {
		if st != 0 {
			return 0, 0, invalid("tree %d: categorical splits are not supported (split_type %d)", i, st)
		}
	}
	if len(m.nodes)+n > math.MaxInt32 {
		return 0, 0, invalid("more than %d nodes", math.MaxInt32)
	}

	base := len(m.nodes)
	order := make([]int64, 1, n) // old node index at each new position
	level := make([]int, 1, n)   // depth at each new position
	seen := make([]bool, n)
	seen[0] = true
	for q := 0; q < len(order); q++ {
		old, idx := order[q], uint32(base+q)
		l, r, cond := t.Left[old], t.Right[old], float32(t.SplitConditions[old])
		if l == -1 {
			if r != -1 {
				return 0, 0, invalid("tree %d node %d: no left child but right child %d", i, old, r)
			}
			if math.IsNaN(float64(cond)) || math.IsInf(float64(cond), 0) {
				return 0, 0, invalid("tree %d node %d: leaf value %v is not finite", i, old, cond)
			}
			m.nodes = append(m.nodes, node{cond: float32(math.NaN()), left: idx})
			m.leaf = append(m.leaf, cond)
			m.missingRight = append(m.missingRight, false)
			depth = max(depth, level[q])
			continue
		}
		if l < 0 || l >= int64(n) || r < 0 || r >= int64(n) {
			return 0, 0, invalid("tree %d node %d: children %d, %d out of range [0, %d)", i, old, l, r, n)
		}
		if seen[l] || seen[r] || l == r {
			return 0, 0, invalid("tree %d node %d: a child is reached twice (cycle or shared node)", i, old)
		}
		seen[l], seen[r] = true, true
		f := t.SplitIndices[old]
		if f < 0 || f >= int64(m.numFeature) {
			return 0, 0, invalid("tree %d node %d: feature %d out of range [0, %d)", i, old, f, m.numFeature)
		}
		if math.IsNaN(float64(cond)) {
			return 0, 0, invalid("tree %d node %d: split condition is NaN", i, old)
		}
		m.nodes = append(m.nodes, node{cond: cond, feat: uint32(f), left: uint32(base + len(order))})
		m.leaf = append(m.leaf, 0)
		m.missingRight = append(m.missingRight, !bool(t.DefaultLeft[old]))
		order = append(order, l, r)
		level = append(level, level[q]+1, level[q]+1)
	}
	return uint32(base), depth, nil
}

// paramInt parses one of the integers XGBoost stores as strings; an absent
// (empty) value is 0.
func paramInt(name, s string, max int) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > max {
		return 0, invalid("%s %q is not an integer in [0, %d]", name, s, max)
	}
	return v, nil
}

// baseScores parses base_score — "5E-1" in XGBoost 1.x, "[5E-1]" in 2.x, a
// per-class list such as "[2.5E-1,2.5E-1,5E-1]" for multi-class models in
// 3.x — into one starting margin per output group.
func baseScores(s, objective string, groups int) ([]float32, error) {
	inner := strings.TrimSpace(s)
	if strings.HasPrefix(inner, "[") && strings.HasSuffix(inner, "]") {
		inner = inner[1 : len(inner)-1]
	}
	parts := strings.Split(inner, ",")
	if len(parts) != 1 && len(parts) != groups {
		return nil, invalid("base_score %q has %d values for %d outputs", s, len(parts), groups)
	}
	out := make([]float32, groups)
	for g := range out {
		part := parts[0]
		if len(parts) > 1 {
			part = parts[g]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, invalid("base_score %q is not a finite number", s)
		}
		if out[g], err = baseMargin(objective, float32(v)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func supportedObjectives() string {
	names := make([]string, 0, len(objectives))
	for name := range objectives {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// quoteNonFinite rewrites the bare NaN, Infinity and inf tokens XGBoost
// writes for non-finite floats (not valid JSON) as quoted strings, which
// float32 fields then read back. Text inside strings is left alone. It
// returns data itself when there is nothing to rewrite.
func quoteNonFinite(data []byte) []byte {
	var out []byte
	last := 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			continue
		}
		if c != 'N' && c != 'I' && c != 'i' && c != '-' {
			continue
		}
		token, quoted := nonFiniteToken(data[i:])
		if token == 0 {
			continue
		}
		out = append(out, data[last:i]...)
		out = append(out, quoted...)
		i += token - 1
		last = i + 1
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

var nonFinite = []struct{ bare, quoted string }{
	{"NaN", `"NaN"`},
	{"Infinity", `"Infinity"`},
	{"-Infinity", `"-Infinity"`},
	{"inf", `"Infinity"`},
	{"-inf", `"-Infinity"`},
}

func nonFiniteToken(b []byte) (int, string) {
	for _, t := range nonFinite {
		if bytes.HasPrefix(b, []byte(t.bare)) {
			return len(t.bare), t.quoted
		}
	}
	return 0, ""
}

// f32 reads a float32 exactly as XGBoost wrote it (parsed straight to
// float32, no detour through float64), plus the quoted non-finite tokens
// quoteNonFinite leaves behind.
type f32 float32

func (f *f32) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = f32(math.NaN())
		return nil
	case `"Infinity"`:
		*f = f32(math.Inf(1))
		return nil
	case `"-Infinity"`:
		*f = f32(math.Inf(-1))
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 32)
	if err != nil {
		return fmt.Errorf("split condition %.40s is not a float32", b)
	}
	*f = f32(v)
	return nil
}
