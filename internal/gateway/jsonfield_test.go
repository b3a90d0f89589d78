package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
)

func TestParseOpenAIRequest(t *testing.T) {
	tests := []struct {
		body   string
		model  string
		stream bool
		bad    bool
	}{
		{body: `{"model":"m"}`, model: "m"},
		{body: " \n{ \"stream\" : true ,\n \"model\" :\t\"m-1\" } \n", model: "m-1", stream: true},
		{body: `{"model":"m","stream":null}`, model: "m"},
		{body: `{"messages":[{"model":"inner"}],"model":"outer"}`, model: "outer"},
		{body: `{"mod\u0065l":"escaped-key"}`, model: "escaped-key"},
		{body: `{"Model":"m"}`, bad: true}, // keys match exactly
		{body: `{"model":"a","mod\u0065l":"b"}`, bad: true},
		{body: `{"model":"m","stream":"yes"}`, bad: true},
		{body: `{"model":""}`, bad: true},
		{body: `{"model":null}`, bad: true},
		{body: `{"model":["m"]}`, bad: true},
		{body: `["model","m"]`, bad: true},
		{body: `{"model":"m"} {}`, bad: true},
		{body: `{"model":"m"`, bad: true},
		{body: ``, bad: true},
	}
	for _, tt := range tests {
		q, err := parseOpenAIRequest([]byte(tt.body))
		if (err != nil) != tt.bad || q.Model != tt.model && !tt.bad || q.Stream != tt.stream && !tt.bad {
			t.Errorf("%s: model %q stream %v err %v", tt.body, q.Model, q.Stream, err)
		}
	}
}

func TestWithModelKeepsOtherBytes(t *testing.T) {
	body := []byte("{\"a\":1,  \"model\" :  \"small\" , \"z\":[1, 2]}")
	q, err := parseOpenAIRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	got := string(q.withModel(body, `org/"big" model`))
	want := "{\"a\":1,  \"model\" :  \"org/\\\"big\\\" model\" , \"z\":[1, 2]}"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTopLevelFieldsNumbersAndObjects(t *testing.T) {
	body := []byte(`{"model_version": 12 ,"outputs":[{"model_name":"x"}],"model_name":{"a":"b"}}`)
	spans, err := topLevelFields(body, "model_name", "model_version", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(body[spans[0].start:spans[0].end]); got != `{"a":"b"}` {
		t.Errorf("model_name span %q", got)
	}
	if got := string(body[spans[1].start:spans[1].end]); got != `12` {
		t.Errorf("model_version span %q", got)
	}
	if spans[2].found {
		t.Error("missing field found")
	}
	out := splice(nil, body, spans[:3], [][]byte{[]byte(`"m"`), []byte(`"3"`), nil})
	if want := `{"model_version": "3" ,"outputs":[{"model_name":"x"}],"model_name":"m"}`; string(out) != want {
		t.Errorf("spliced %s", out)
	}
}

// FuzzParseOpenAIRequest checks the model extraction against
// encoding/json: whatever it accepts is a JSON object whose "model" is the
// model it read, and rewriting the model changes that field and no other.
func FuzzParseOpenAIRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true}`,
		`{"model":"m","stream":null}`,
		`{"model":"m","stream":"yes"}`,
		`{"stream":false,"model":"a\u00e9\ud83d\ude00"}`,
		`{"model":"m","model":"n"}`,
		`{"mod\u0065l":"m"}`,
		`{"model":"m"}garbage`,
		`{"model":1e999}`,
		`[{"model":"m"}]`,
		"{\"model\":\"\xff\xfe\"}",
		` {"a":{"model":"x"},"model":"y"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := parseOpenAIRequest(body)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		var model string
		if err := json.Unmarshal(m["model"], &model); err != nil || model != q.Model {
			t.Fatalf("read model %q from %q; encoding/json reads %q (%v)", q.Model, body, model, err)
		}
		var stream bool
		if raw, ok := m["stream"]; ok && json.Unmarshal(raw, &stream) != nil {
			t.Fatalf("accepted %q, whose stream encoding/json refuses", body)
		}
		if stream != q.Stream {
			t.Fatalf("read stream %v from %q; encoding/json reads %v", q.Stream, body, stream)
		}
		out := q.withModel(body, "renamed/model")
		var m2 map[string]json.RawMessage
		if err := json.Unmarshal(out, &m2); err != nil {
			t.Fatalf("rewriting %q gave invalid JSON %q: %v", body, out, err)
		}
		if string(m2["model"]) != `"renamed/model"` || len(m2) != len(m) {
			t.Fatalf("rewriting %q gave %q", body, out)
		}
		for k, v := range m {
			if k != "model" && !bytes.Equal(m2[k], v) {
				t.Fatalf("rewriting %q changed field %q: %q → %q", body, k, v, m2[k])
			}
		}
		q2, err := parseOpenAIRequest(out)
		if err != nil || q2.Model != "renamed/model" || q2.Stream != q.Stream {
			t.Fatalf("rewritten %q parses as %+v, %v", out, q2, err)
		}
	})
}

// The scanner behind topLevelFields finds only top-level keys, after
// unescaping, whatever strings and nesting surround them.
func TestTopLevelFieldsScanner(t *testing.T) {
	cases := []struct {
		body, want string // want: the model field's value, "-" for none, "!" for an error
	}{
		{`{"a":"}{\"","model":"m"}`, `"m"`},
		{`{"mo\u0064el" : 7 }`, `7`},
		{`{"x":{"model":"inner","y":[{"model":1}]},"model":["outer"]}`, `["outer"]`},
		{` { "b" : [ "]" , { } ] , "model" : null } `, `null`},
		{`{"x":1}`, `-`},
		{`{}`, `-`},
		{`{"model":"a","model":"b"}`, `!`},
		{`["model"]`, `!`},
		{`{"model":1} x`, `!`},
		{`{"model":}`, `!`},
		{``, `!`},
	}
	for _, c := range cases {
		spans, err := topLevelFields([]byte(c.body), "model")
		got := "!"
		if err == nil {
			got = "-"
			if s := spans[0]; s.found {
				got = c.body[s.start:s.end]
			}
		}
		if got != c.want {
			t.Errorf("%s: model %s (%v), want %s", c.body, got, err, c.want)
		}
	}
}

// jsonUsage reads what encoding/json reads into *openAIUsage.
func TestJSONUsageAgreesWithEncodingJSON(t *testing.T) {
	for _, b := range []string{
		`{"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`,
		`{"id":"c","usage":{"completion_tokens":2},"choices":[]}`,
		`{"usage":null}`, `{"usage":{}}`, `{"x":1}`, `{"usage":[1]}`, `{"usage":7}`,
		`{"usage":{"prompt_tokens":"9"}}`, `{"usage":{"prompt_tokens":9.5}}`, `{"usage":{"prompt_tokens":1e2}}`,
		`{"usage":{"prompt_tokens":null,"completion_tokens":3}}`, `{"usage":{"prompt_tokens":-1}}`,
	} {
		var want struct {
			Usage *openAIUsage `json:"usage"`
		}
		if json.Unmarshal([]byte(b), &want) != nil {
			want.Usage = nil
		}
		got, ok := jsonUsage([]byte(b), false)
		if ok != (want.Usage != nil) || ok && got != *want.Usage {
			t.Errorf("%s: %+v (%v), encoding/json reads %+v", b, got, ok, want.Usage)
		}
	}
}

// topLevelFields checks documents with go-json's Valid for speed; it
// must accept exactly what encoding/json accepts.
func FuzzJSONValid(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1}`, `{"a":"\u00e9"}`, "\"\xff\"", `1e5`, `-0.5e-3`, `[1,2,]`,
		`{"a":tru}`, ` {"a" : [ null , true , false ] } `, `"\ud800"`, `01`, `1.`, `.5`, "\"\x01\"", `{"a":1}{}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `{"model":"m","stream":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if std, fast := json.Valid(b), gojson.Valid(b); std != fast {
			t.Fatalf("%q: encoding/json says valid %v, go-json %v", b, std, fast)
		}
	})
}
