package oip

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/domain"
)

func TestFloat64s(t *testing.T) {
	cases := []struct {
		name     string
		datatype string
		shape    []int64
		data     string
		want     []float64
		err      string
	}{
		{"flat", "FP64", []int64{2, 2}, `[1, 2.5, -3e2, 0]`, []float64{1, 2.5, -300, 0}, ""},
		{"nested", "FP64", []int64{2, 2}, `[[1, 2], [3, 4]]`, []float64{1, 2, 3, 4}, ""},
		{"null is missing", "FP32", []int64{1, 3}, `[[1, null, 3]]`, []float64{1, math.NaN(), 3}, ""},
		{"fp32 rounds", "FP32", []int64{1}, `[0.1]`, []float64{float64(float32(0.1))}, ""},
		{"ints", "INT64", []int64{3}, `[1, -2, 3]`, []float64{1, -2, 3}, ""},
		{"empty tensor", "FP64", []int64{0, 3}, `[]`, []float64{}, ""},
		{"too few", "FP64", []int64{2, 2}, `[1, 2, 3]`, nil, "3 elements but its shape [2 2] needs 4"},
		{"too many", "FP64", []int64{1, 2}, `[1, 2, 3]`, nil, "more elements than the shape holds"},
		{"bytes datatype", "BYTES", []int64{1}, `["a"]`, nil, `datatype "BYTES"`},
		{"unknown datatype", "FLOAT", []int64{1}, `[1]`, nil, `datatype "FLOAT"`},
		{"fraction in int", "INT32", []int64{1}, `[1.5]`, nil, "not an integer"},
		{"int8 bounds", "INT8", []int64{2}, `[-128, 127]`, []float64{-128, 127}, ""},
		{"uint8 bounds", "UINT8", []int64{2}, `[0, 255]`, []float64{0, 255}, ""},
		{"int8 over", "INT8", []int64{1}, `[1000]`, nil, "out of range for INT8"},
		{"int8 under", "INT8", []int64{1}, `[-129]`, nil, "out of range for INT8"},
		{"negative uint", "UINT8", []int64{1}, `[-1]`, nil, "out of range for UINT8"},
		{"uint16 over", "UINT16", []int64{1}, `[65536]`, nil, "out of range for UINT16"},
		{"int32 over", "INT32", []int64{1}, `[2147483648]`, nil, "out of range for INT32"},
		{"int64 over", "INT64", []int64{1}, `[1e19]`, nil, "out of range for INT64"},
		{"uint64 over", "UINT64", []int64{1}, `[2e19]`, nil, "out of range for UINT64"},
		{"null in int", "INT32", []int64{1}, `[null]`, nil, "null"},
		{"string element", "FP64", []int64{1}, `["1"]`, nil, "numbers or null"},
		{"bad number", "FP64", []int64{1}, `[1.2.3]`, nil, "not a JSON number"},
		{"overflow", "FP64", []int64{1}, `[1e999]`, nil, "out of range"},
		{"negative dim", "FP64", []int64{-1, 2}, `[1, 2]`, nil, "negative dimension"},
		{"huge shape", "FP64", []int64{1 << 20, 1 << 20}, `[1]`, nil, "too large"},
		{"unterminated", "FP64", []int64{2}, `[1, 2`, nil, "unterminated"},
		{"trailing", "FP64", []int64{1}, `[1] x`, nil, "trailing"},
		{"no data", "FP64", []int64{1}, ``, nil, "no data"},
		{"null data", "FP64", []int64{3}, `null`, nil, "no data"},
		{"too deep", "FP64", []int64{1}, strings.Repeat("[", 40) + "1" + strings.Repeat("]", 40), nil, "nested too deeply"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tn := Tensor{Name: "x", Datatype: c.datatype, Shape: c.shape, Data: json.RawMessage(c.data)}
			got, err := tn.Float64s(nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, domain.ErrInvalid) {
					t.Fatalf("err = %v, want one containing %q wrapping ErrInvalid", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] && !(math.IsNaN(got[i]) && math.IsNaN(c.want[i])) {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	ok := `{"id":"r1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2]}]}`
	req, err := DecodeRequest(strings.NewReader(ok), 1<<10)
	if err != nil || req.ID != "r1" || len(req.Inputs) != 1 {
		t.Fatalf("DecodeRequest = %+v, %v", req, err)
	}
	for _, c := range []struct{ body, err string }{
		{`{"inputs":[]}`, "no inputs"},
		{`{"inputs":[{"name":"x"}], "extra":1}`, "unknown field"},
		{`{"inputs":`, "not valid JSON"},
		{ok + `{}`, "after the JSON"},
		{`{"inputs":[{"name":"` + strings.Repeat("a", 2000) + `"}]}`, "larger than"},
	} {
		if _, err := DecodeRequest(strings.NewReader(c.body), 1<<10); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("DecodeRequest(%.40q) = %v, want error containing %q", c.body, err, c.err)
		}
	}
}

// FuzzFloat64s: arbitrary tensor data never panics, never yields more
// elements than the shape, and agrees with encoding/json on what it accepts.
func FuzzFloat64s(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1,null],[3,4]]`, `[1e308, -0.0, 5E-3]`, `[[[]]]`, `[1,`, `null`, `[-]`, `[0x10]`} {
		f.Add(s, int64(3))
	}
	f.Fuzz(func(t *testing.T, data string, n int64) {
		if n < 0 || n > 1<<16 {
			return
		}
		tn := Tensor{Name: "x", Datatype: "FP64", Shape: []int64{n}, Data: json.RawMessage(data)}
		got, err := tn.Float64s(nil)
		if err != nil {
			return
		}
		if int64(len(got)) != n {
			t.Fatalf("accepted %d elements for shape [%d]", len(got), n)
		}
		var v any
		if json.Unmarshal([]byte(data), &v) != nil {
			t.Fatalf("accepted %q, which is not JSON", data)
		}
	})
}

// WriteJSON declares its answer's length, so that the gateway can refuse
// an in-process answer over its response cap before sending any of it.
func TestWriteJSONDeclaresLength(t *testing.T) {
	for _, n := range []int{10, 2 << 20} { // a pooled buffer and one too large to keep
		rec := httptest.NewRecorder()
		WriteJSON(rec, InferResponse{ModelName: strings.Repeat("m", n)})
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want || rec.Code != http.StatusOK {
			t.Fatalf("%d: status %d, Content-Length %q for a %s-byte body", n, rec.Code, got, want)
		}
		var back InferResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || len(back.ModelName) != n {
			t.Fatalf("%d: body does not decode: %v", n, err)
		}
	}
}
