package gateway

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/metrics"
)

// oipAns builds an infer answer from "name:DATATYPE:shape:data" outputs,
// such as "label:INT64:[5]:[1,0,1,1,0]".
func oipAns(outputs ...string) string {
	var parts []string
	for _, o := range outputs {
		f := strings.SplitN(o, ":", 4)
		parts = append(parts, `{"name":"`+f[0]+`","datatype":"`+f[1]+`","shape":`+f[2]+`,"data":`+f[3]+`}`)
	}
	return `{"model_name":"m","model_version":"1","outputs":[` + strings.Join(parts, ",") + `]}`
}

func sseChat(deltas ...string) string {
	var b strings.Builder
	for _, d := range deltas {
		b.WriteString("data: " + d + "\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

func b64floats(xs ...float32) string {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestCompareAnswers(t *testing.T) {
	const (
		agree    = metrics.CompareAgree
		disagree = metrics.CompareDisagree
		skip     = metrics.CompareSkipped
	)
	labels5 := "label:INT64:[5]:[1,0,1,1,0]"
	scores4 := "proba:FP64:[2,2]:[[0.5,0.25],[0.125,1]]"
	chat := func(contents ...string) string {
		var cs []string
		for i, c := range contents {
			cs = append(cs, `{"index":`+string(rune('0'+i))+`,"message":{"role":"assistant","content":`+c+`},"finish_reason":"stop"}`)
		}
		return `{"id":"x","object":"chat.completion","choices":[` + strings.Join(cs, ",") + `],"usage":{"prompt_tokens":1,"completion_tokens":2}}`
	}
	tests := []struct {
		name            string
		kind            compareKind
		primary, shadow comparedAnswer
		want            metrics.ShadowComparison
	}{
		{
			name:    "oip identical answers agree",
			primary: comparedAnswer{body: []byte(oipAns(labels5, scores4))},
			shadow:  comparedAnswer{body: []byte(oipAns(scores4, labels5))},
			want:    metrics.ShadowComparison{Result: agree, Labels: 5, Scores: 4},
		},
		{
			name:    "oip labels differ on 2 of 5",
			primary: comparedAnswer{body: []byte(oipAns(labels5))},
			shadow:  comparedAnswer{body: []byte(oipAns("label:INT64:[5]:[1,1,1,0,0]"))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 5, LabelMismatches: 2},
		},
		{
			name:    "oip scores differ by 0.5 and 0.25",
			primary: comparedAnswer{body: []byte(oipAns(labels5, scores4))},
			shadow:  comparedAnswer{body: []byte(oipAns(labels5, "proba:FP64:[2,2]:[[1,0.25],[0.125,0.75]]"))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 5, Scores: 4, AbsDiff: 0.75},
		},
		{
			name:    "oip scores within tolerance agree and still count their difference",
			primary: comparedAnswer{body: []byte(oipAns("p:FP64:[2]:[1000,0.5]"))},
			shadow:  comparedAnswer{body: []byte(oipAns("p:FP64:[2]:[1000.0009765625,0.5]"))},
			want:    metrics.ShadowComparison{Result: agree, Scores: 2, AbsDiff: 0.0009765625},
		},
		{
			name:    "oip FP32 scores are compared as float32",
			primary: comparedAnswer{body: []byte(oipAns("p:FP32:[1]:[0.1]"))},
			shadow:  comparedAnswer{body: []byte(oipAns("p:FP32:[1]:[0.10000000000000001]"))},
			want:    metrics.ShadowComparison{Result: agree, Scores: 1},
		},
		{
			name:    "oip missing values on both sides agree; on one side disagree",
			primary: comparedAnswer{body: []byte(oipAns("p:FP64:[3]:[null,null,0.5]"))},
			shadow:  comparedAnswer{body: []byte(oipAns("p:FP64:[3]:[null,0.5,0.5]"))},
			want:    metrics.ShadowComparison{Result: disagree, Scores: 1},
		},
		{
			name:    "oip output missing from the shadow disagrees; the others count",
			primary: comparedAnswer{body: []byte(oipAns(labels5, scores4))},
			shadow:  comparedAnswer{body: []byte(oipAns(labels5))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 5},
		},
		{
			name:    "oip outputs only the shadow has are ignored",
			primary: comparedAnswer{body: []byte(oipAns(labels5))},
			shadow:  comparedAnswer{body: []byte(oipAns(labels5, scores4))},
			want:    metrics.ShadowComparison{Result: agree, Labels: 5},
		},
		{
			name:    "oip shape differs",
			primary: comparedAnswer{body: []byte(oipAns(scores4))},
			shadow:  comparedAnswer{body: []byte(oipAns("proba:FP64:[4]:[0.5,0.25,0.125,1]"))},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "oip label turned score",
			primary: comparedAnswer{body: []byte(oipAns(labels5))},
			shadow:  comparedAnswer{body: []byte(oipAns("label:FP32:[5]:[1,0,1,1,0]"))},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "oip integer widths are all labels",
			primary: comparedAnswer{body: []byte(oipAns("label:INT64:[3]:[1,2,3]"))},
			shadow:  comparedAnswer{body: []byte(oipAns("label:UINT8:[3]:[1,2,4]"))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 3, LabelMismatches: 1},
		},
		{
			name:    "oip bool and bytes labels, nested",
			primary: comparedAnswer{body: []byte(oipAns(`ok:BOOL:[2,2]:[[true,false],[true,true]]`, `cls:BYTES:[3]:["cat","dog","cat"]`))},
			shadow:  comparedAnswer{body: []byte(oipAns(`ok:BOOL:[2,2]:[[true,true],[true,true]]`, `cls:BYTES:[3]:["cat","dog","\u0063at"]`))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 7, LabelMismatches: 1},
		},
		{
			name:    "oip shadow element count disagrees with its shape",
			primary: comparedAnswer{body: []byte(oipAns(labels5))},
			shadow:  comparedAnswer{body: []byte(oipAns("label:INT64:[5]:[1,0,1]"))},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "oip undecodable primary is skipped",
			primary: comparedAnswer{body: []byte(`<html>oops</html>`)},
			shadow:  comparedAnswer{body: []byte(oipAns(labels5))},
			want:    metrics.ShadowComparison{Result: skip, Skip: metrics.SkipUndecodable},
		},
		{
			name:    "oip undecodable shadow disagrees",
			primary: comparedAnswer{body: []byte(oipAns(labels5))},
			shadow:  comparedAnswer{body: []byte(`{"error":"nope"}`)},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "chat same content",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(chat(`"hello"`))},
			shadow:  comparedAnswer{body: []byte(chat(`"hello"`))},
			want:    metrics.ShadowComparison{Result: agree, Labels: 1},
		},
		{
			name:    "chat content differs in one of two choices",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(chat(`"hello"`, `"hi"`))},
			shadow:  comparedAnswer{body: []byte(chat(`"hello"`, `"hey"`))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 2, LabelMismatches: 1},
		},
		{
			name:    "chat choice missing from the shadow",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(chat(`"hello"`, `"hi"`))},
			shadow:  comparedAnswer{body: []byte(chat(`"hello"`))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 2, LabelMismatches: 1},
		},
		{
			name:    "chat extra choice from the shadow",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(chat(`"hello"`))},
			shadow:  comparedAnswer{body: []byte(chat(`"hello"`, `"hi"`))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 2, LabelMismatches: 1},
		},
		{
			name:    "chat stream chunked differently from a whole answer agrees",
			kind:    compareChat,
			primary: comparedAnswer{sse: true, body: []byte(sseChat(`{"choices":[{"index":0,"delta":{"role":"assistant","content":"hel"}}]}`, `{"choices":[{"index":0,"delta":{"content":"lo"}}]}`, `{"choices":[],"usage":{"prompt_tokens":1}}`))},
			shadow:  comparedAnswer{body: []byte(chat(`"hello"`))},
			want:    metrics.ShadowComparison{Result: agree, Labels: 1},
		},
		{
			name:    "chat streams differ",
			kind:    compareChat,
			primary: comparedAnswer{sse: true, body: []byte(sseChat(`{"choices":[{"index":0,"delta":{"content":"yes"}}]}`))},
			shadow:  comparedAnswer{sse: true, body: []byte(sseChat(`{"choices":[{"index":0,"delta":{"content":"no"}}]}`))},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 1, LabelMismatches: 1},
		},
		{
			name:    "chat tool calls differ",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(`{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]}}]}`)},
			shadow:  comparedAnswer{body: []byte(`{"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"b","type":"function","function":{"name":"f","arguments":"{\"x\":2}"}}]}}]}`)},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 1, LabelMismatches: 1},
		},
		{
			name:    "chat undecodable stream from the shadow disagrees",
			kind:    compareChat,
			primary: comparedAnswer{body: []byte(chat(`"hello"`))},
			shadow:  comparedAnswer{sse: true, body: []byte("data: {not json\n\n")},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "completion text",
			kind:    compareCompletion,
			primary: comparedAnswer{body: []byte(`{"choices":[{"index":0,"text":"4"},{"index":1,"text":"5"}]}`)},
			shadow:  comparedAnswer{body: []byte(`{"choices":[{"index":1,"text":"5"},{"index":0,"text":"four"}]}`)},
			want:    metrics.ShadowComparison{Result: disagree, Labels: 2, LabelMismatches: 1},
		},
		{
			name:    "embeddings differ by known amounts; base64 reads as floats",
			kind:    compareEmbeddings,
			primary: comparedAnswer{body: []byte(`{"object":"list","data":[{"index":0,"embedding":[0.5,0.25,-1]},{"index":1,"embedding":[1,2]}]}`)},
			shadow:  comparedAnswer{body: []byte(`{"object":"list","data":[{"index":1,"embedding":"` + b64floats(1, 2.5) + `"},{"index":0,"embedding":[0.5,0,-1]}]}`)},
			want:    metrics.ShadowComparison{Result: disagree, Scores: 5, AbsDiff: 0.75},
		},
		{
			name:    "embeddings of another dimension",
			kind:    compareEmbeddings,
			primary: comparedAnswer{body: []byte(`{"data":[{"index":0,"embedding":[0.5,0.25]}]}`)},
			shadow:  comparedAnswer{body: []byte(`{"data":[{"index":0,"embedding":[0.5]}]}`)},
			want:    metrics.ShadowComparison{Result: disagree},
		},
		{
			name:    "embeddings equal",
			kind:    compareEmbeddings,
			primary: comparedAnswer{body: []byte(`{"data":[{"index":0,"embedding":[0.5,0.25]}]}`)},
			shadow:  comparedAnswer{body: []byte(`{"data":[{"index":0,"embedding":"` + b64floats(0.5, 0.25) + `"}]}`)},
			want:    metrics.ShadowComparison{Result: agree, Scores: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := compareAnswers(tc.kind, tc.primary, tc.shadow); got != tc.want {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCompareKindOf(t *testing.T) {
	for path, want := range map[string]compareKind{
		"/v1/chat/completions": compareChat, "/v1/completions": compareCompletion,
		"/v1/embeddings": compareEmbeddings, "/v2/models/m/infer": compareOIP,
	} {
		if got := compareKindOf(path); got != want {
			t.Errorf("compareKindOf(%q) = %d, want %d", path, got, want)
		}
	}
}

// The comparison reads answers from model servers: it must not panic on
// anything, and a primary that cannot be read is never judged.
func FuzzCompareAnswers(f *testing.F) {
	f.Add(uint8(0), oipAns("label:INT64:[5]:[1,0,1,1,0]"), oipAns("label:INT64:[5]:[1,1,1,1,0]"), false)
	f.Add(uint8(1), sseChat(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`), `{"choices":[{"index":0,"message":{"content":"a"}}]}`, true)
	f.Add(uint8(3), `{"data":[{"index":0,"embedding":[1]}]}`, `{"data":[{"index":0,"embedding":"AACAPw=="}]}`, false)
	f.Fuzz(func(t *testing.T, kind uint8, p, s string, sse bool) {
		c := compareAnswers(compareKind(kind%4), comparedAnswer{body: []byte(p), sse: sse}, comparedAnswer{body: []byte(s)})
		if c.LabelMismatches > c.Labels || c.AbsDiff < 0 || math.IsNaN(c.AbsDiff) {
			t.Fatalf("inconsistent comparison %+v", c)
		}
		if c.Result == metrics.CompareSkipped && (c.Labels != 0 || c.Scores != 0) {
			t.Fatalf("skipped comparison with figures %+v", c)
		}
	})
}
