package runtime

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

func TestValidateOptions(t *testing.T) {
	type kv = map[string]string
	tests := []struct {
		name     string
		format   domain.Format
		opts     kv
		artifact bool
		want     string // "" accepts; otherwise a substring of the error
	}{
		// external
		{"external oip", domain.FormatExternal, kv{"url": "http://127.0.0.1:9001", "protocol": "oip-v2"}, false, ""},
		{"external openai, all options", domain.FormatExternal, kv{"url": "http://localhost:8000/", "protocol": "openai", "model_name": "meta-llama/Llama-3-8B", "timeout": "2m"}, false, ""},
		{"external hostname outside loopback", domain.FormatExternal, kv{"url": "https://triton.example.com", "protocol": "oip-v2"}, false, ""},
		{"external without url", domain.FormatExternal, kv{"protocol": "oip-v2"}, false, `"url" is required`},
		{"external without protocol", domain.FormatExternal, kv{"url": "http://127.0.0.1:9001"}, false, `"protocol" is required`},
		{"external bad protocol", domain.FormatExternal, kv{"url": "http://127.0.0.1:9001", "protocol": "grpc"}, false, `"grpc"; it must be oip-v2 or openai`},
		{"external metadata url", domain.FormatExternal, kv{"url": "http://169.254.169.254/", "protocol": "oip-v2"}, false, "cloud metadata"},
		{"external mapped metadata url", domain.FormatExternal, kv{"url": "http://[::ffff:169.254.169.254]/", "protocol": "oip-v2"}, false, "cloud metadata"},
		{"external decimal metadata url", domain.FormatExternal, kv{"url": "http://2852039166/", "protocol": "oip-v2"}, false, "non-standard form"},
		{"external literal IP outside the default allowlist", domain.FormatExternal, kv{"url": "http://10.0.0.5:8000", "protocol": "oip-v2"}, false, "not in the egress allowlist"},
		{"external ftp", domain.FormatExternal, kv{"url": "ftp://127.0.0.1/", "protocol": "oip-v2"}, false, `scheme "ftp"`},
		{"external userinfo", domain.FormatExternal, kv{"url": "http://u:p@127.0.0.1/", "protocol": "oip-v2"}, false, "password"},
		{"external bad timeout", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "timeout": "soon"}, false, `"timeout" is "soon"`},
		{"external zero timeout", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "timeout": "0s"}, false, "more than 0"},
		{"external huge timeout", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "timeout": "48h"}, false, "at most 1h0m0s"},
		{"external empty model name", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "model_name": ""}, false, `"model_name" must be 1 to 256`},
		{"external with artifact", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2"}, true, "carries no artifact"},
		{"external openai url ending in /v1", domain.FormatExternal, kv{"url": "http://127.0.0.1:8000/v1", "protocol": "openai"}, false, "without /v1"},
		{"external unknown key", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "threads": "4"}, false,
			`"threads" is not known to an external version; accepted: model_name, protocol, timeout, url`},
		{"external process key", domain.FormatExternal, kv{"url": "http://127.0.0.1:1", "protocol": "oip-v2", "command": "x {port}"}, false, `"command" is not known`},

		// openai
		{"openai url", domain.FormatOpenAI, kv{"url": "http://127.0.0.1:8000"}, false, ""},
		{"openai url, protocol spelled out", domain.FormatOpenAI, kv{"url": "http://127.0.0.1:8000", "protocol": "openai", "model_name": "gpt-x"}, false, ""},
		{"openai command", domain.FormatOpenAI, kv{"command": "llama-server -m {artifact_dir}/model.gguf --port {port}"}, true, ""},
		{"openai neither", domain.FormatOpenAI, kv{"model_name": "x"}, false, `needs runtime option "url"`},
		{"openai both", domain.FormatOpenAI, kv{"url": "http://127.0.0.1:8000", "command": "x {port}"}, false, "both given"},
		{"openai other protocol", domain.FormatOpenAI, kv{"url": "http://127.0.0.1:8000", "protocol": "oip-v2"}, false, "always speaks openai"},
		{"openai url with process key", domain.FormatOpenAI, kv{"url": "http://127.0.0.1:8000", "health_path": "/health"}, false, `"health_path" is not known to an openai version with a url`},
		{"openai command with url key", domain.FormatOpenAI, kv{"command": "x {port}", "timeout": "5s"}, false, `"timeout" is not known to an openai version with a command`},
		{"openai metadata", domain.FormatOpenAI, kv{"url": "http://100.100.100.200/"}, false, "Alibaba"},

		// process
		{"process minimal", domain.FormatProcess, kv{"command": "server --port {port}"}, false, ""},
		{"process everything", domain.FormatProcess, kv{
			"command": `python3 -m serve --dir '{artifact_dir}' --name "{model}" --v {version}`, "protocol": "openai",
			"health_path": "/health?full=1", "startup_timeout": "5m", "env.PORT": "{port}", "env.HF_HOME": "/tmp/hf", "model_name": "m",
		}, true, ""},
		{"process port only in env", domain.FormatProcess, kv{"command": "server", "env.PORT": "{port}"}, false, ""},
		{"process no command", domain.FormatProcess, kv{"protocol": "oip-v2"}, false, `"command" is required`},
		{"process blank command", domain.FormatProcess, kv{"command": "  "}, false, `"command" is required`},
		{"process no port", domain.FormatProcess, kv{"command": "server --port 8000"}, false, "must use {port}"},
		{"process unknown placeholder", domain.FormatProcess, kv{"command": "server --port {port} --gpu {gpu}"}, false, "unknown placeholder {gpu}"},
		{"process unknown placeholder in env", domain.FormatProcess, kv{"command": "server {port}", "env.X": "{home}"}, false, "unknown placeholder {home}"},
		{"process json argument", domain.FormatProcess, kv{"command": `server {port} --config '{"a": 1}'`}, false, ""},
		{"process artifact dir without artifact", domain.FormatProcess, kv{"command": "server {artifact_dir} {port}"}, false, "has no artifact"},
		{"process artifact dir in env without artifact", domain.FormatProcess, kv{"command": "server {port}", "env.D": "{artifact_dir}"}, false, "has no artifact"},
		{"process unterminated quote", domain.FormatProcess, kv{"command": "server '{port}"}, false, "unterminated single quote"},
		{"process shell pipe", domain.FormatProcess, kv{"command": "server {port} | tee log"}, false, `unquoted '|'`},
		{"process shell variable", domain.FormatProcess, kv{"command": "server --port $PORT {port}"}, false, `unquoted '$'`},
		{"process bad env name", domain.FormatProcess, kv{"command": "server {port}", "env.1X": "v"}, false, `name "1X"`},
		{"process empty env name", domain.FormatProcess, kv{"command": "server {port}", "env.": "v"}, false, `name ""`},
		{"process bad protocol", domain.FormatProcess, kv{"command": "server {port}", "protocol": "http"}, false, `"http"; it must be`},
		{"process bad health path", domain.FormatProcess, kv{"command": "server {port}", "health_path": "health"}, false, `"health_path" is "health"`},
		{"process health path as URL", domain.FormatProcess, kv{"command": "server {port}", "health_path": "//evil/health"}, false, "single /"},
		{"process health path with space", domain.FormatProcess, kv{"command": "server {port}", "health_path": "/a b"}, false, "spaces"},
		{"process bad startup timeout", domain.FormatProcess, kv{"command": "server {port}", "startup_timeout": "-1s"}, false, "more than 0"},
		{"process unknown key", domain.FormatProcess, kv{"command": "server {port}", "url": "http://127.0.0.1"}, false,
			`"url" is not known to a process version; accepted: command, env.NAME, health_path, model_name, protocol, startup_timeout`},

		// xgboost-json
		{"xgboost no options", domain.FormatXGBoostJSON, nil, true, ""},
		{"xgboost model file", domain.FormatXGBoostJSON, kv{"model_file": "models/v1.json"}, true, ""},
		{"xgboost without artifact", domain.FormatXGBoostJSON, nil, false, "needs an artifact"},
		{"xgboost model file escaping", domain.FormatXGBoostJSON, kv{"model_file": "../secret.json"}, true, `"model_file"`},
		{"xgboost absolute model file", domain.FormatXGBoostJSON, kv{"model_file": "/etc/model.json"}, true, "absolute"},
		{"xgboost model file not json", domain.FormatXGBoostJSON, kv{"model_file": "model.ubj"}, true, "ends in .json"},
		{"xgboost unknown key", domain.FormatXGBoostJSON, kv{"threads": "2"}, true, `"threads" is not known to an xgboost-json version; accepted: model_file`},

		// any format
		{"unknown format", domain.Format("onnx"), nil, true, `format "onnx"`},
		{"malformed key", domain.FormatProcess, kv{"command": "s {port}", "a b": "c"}, false, "runtime option key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateOptions(tt.format, tt.opts, tt.artifact)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateOptions = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ValidateOptions = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateOptions = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateOptionsWithPolicy(t *testing.T) {
	opts := map[string]string{"url": "http://10.0.0.5:8000", "protocol": "oip-v2"}
	p := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if err := ValidateOptionsWithPolicy(p, domain.FormatExternal, opts, false); err != nil {
		t.Fatalf("allowlisted address refused: %v", err)
	}
	if err := ValidateOptions(domain.FormatExternal, opts, false); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("default policy accepted 10.0.0.5: %v", err)
	}
	opts["url"] = "http://169.254.169.254"
	everything := &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	if err := ValidateOptionsWithPolicy(everything, domain.FormatExternal, opts, false); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("metadata address accepted under an allow-everything policy: %v", err)
	}
}

func TestParseExternal(t *testing.T) {
	o, err := ParseExternal(map[string]string{"url": "http://127.0.0.1:9001/prefix", "protocol": "openai", "timeout": "1500ms", "model_name": "up"})
	if err != nil {
		t.Fatal(err)
	}
	if o.URL.String() != "http://127.0.0.1:9001/prefix" || o.Protocol != ProtocolOpenAI || o.Timeout != 1500*time.Millisecond || o.ModelName != "up" {
		t.Fatalf("ParseExternal = %+v", o)
	}
	o, err = ParseExternal(map[string]string{"url": "http://10.1.1.1", "protocol": "oip-v2"})
	if err != nil {
		t.Fatalf("ParseExternal leaves the allowlist to the runtime, got %v", err)
	}
	if o.Timeout != DefaultTimeout || o.ModelName != "" {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestParseProcess(t *testing.T) {
	o, err := ParseProcess(map[string]string{
		"command":     `serve --dir "{artifact_dir}/my model" --port={port} 'a b'\ c`,
		"env.MODEL":   "{model}@{version}",
		"env.THREADS": "4",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessOptions{
		Command:        []string{"serve", "--dir", "{artifact_dir}/my model", "--port={port}", "a b c"},
		Env:            map[string]string{"MODEL": "{model}@{version}", "THREADS": "4"},
		Protocol:       ProtocolOIP,
		HealthPath:     "/v2/health/ready",
		StartupTimeout: DefaultStartupTimeout,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("ParseProcess =\n%+v\nwant\n%+v", o, want)
	}
	o, err = ParseProcess(map[string]string{"command": "s {port}", "protocol": "openai", "startup_timeout": "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if o.HealthPath != "/v1/models" || o.StartupTimeout != 3*time.Second {
		t.Fatalf("openai defaults: %+v", o)
	}
}

func TestParseOpenAI(t *testing.T) {
	o, err := ParseOpenAI(map[string]string{"url": "http://127.0.0.1:8000"})
	if err != nil || o.External == nil || o.Process != nil || o.External.Protocol != ProtocolOpenAI {
		t.Fatalf("url mode: %+v, %v", o, err)
	}
	o, err = ParseOpenAI(map[string]string{"command": "srv {port}"})
	if err != nil || o.Process == nil || o.External != nil || o.Process.Protocol != ProtocolOpenAI || o.Process.HealthPath != "/v1/models" {
		t.Fatalf("command mode: %+v, %v", o, err)
	}
}

func TestTemplateValuesExpand(t *testing.T) {
	v := TemplateValues{Port: 41234, ArtifactDir: "/var/lib/slipway/a b", Model: "fraud", Version: 3}
	got := v.Expand("--port={port} --dir={artifact_dir} {model}:{version} {port} {unknown}")
	want := "--port=41234 --dir=/var/lib/slipway/a b fraud:3 41234 {unknown}"
	if got != want {
		t.Fatalf("Expand = %q, want %q", got, want)
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"a b  c", []string{"a", "b", "c"}, ""},
		{"  lead and trail\t\n", []string{"lead", "and", "trail"}, ""},
		{`'single quoted' x`, []string{"single quoted", "x"}, ""},
		{`'it''s'`, []string{"its"}, ""},
		{`'a\b'`, []string{`a\b`}, ""},
		{`"double $ and | kept"`, []string{"double $ and | kept"}, ""},
		{`"esc \" and \\ and \n"`, []string{`esc " and \ and \n`}, ""},
		{`a\ b c`, []string{"a b", "c"}, ""},
		{`a\|b`, []string{"a|b"}, ""},
		{"line \\\ncontinued", []string{"line", "continued"}, ""},
		{`x'y'"z"`, []string{"xyz"}, ""},
		{`'' ""`, []string{"", ""}, ""},
		{`--json='{"k": [1, 2]}'`, []string{`--json={"k": [1, 2]}`}, ""},
		{"ünï cödé", []string{"ünï", "cödé"}, ""},

		{"", nil, "is empty"},
		{"   ", nil, "is empty"},
		{`'open`, nil, "unterminated single quote"},
		{`"open`, nil, "unterminated double quote"},
		{`"open\"`, nil, "unterminated double quote"},
		{`trailing\`, nil, "lone backslash"},
		{"a | b", nil, `unquoted '|'`},
		{"a && b", nil, `unquoted '&'`},
		{"a; b", nil, `unquoted ';'`},
		{"a > out", nil, `unquoted '>'`},
		{"a < in", nil, `unquoted '<'`},
		{"$(id)", nil, `unquoted '$'`},
		{"`id`", nil, "unquoted '`'"},
		{"a\x00b", nil, "NUL"},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if tt.err != "" {
			if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("SplitCommand(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// quote writes args back as a command line SplitCommand must read back
// unchanged.
func quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// FuzzSplitCommand checks that splitting never panics, that refusals wrap
// ErrInvalid, and that any argv it produces survives quoting and splitting
// again unchanged.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e" f\ g`, `'unterminated`, "x | y", `"{port}"`, "a\\\nb", `''`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := SplitCommand(s)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("SplitCommand(%q) = %v, want ErrInvalid", s, err)
			}
			return
		}
		if len(args) == 0 {
			t.Fatalf("SplitCommand(%q) returned no words and no error", s)
		}
		for _, a := range args {
			if strings.IndexByte(a, 0) >= 0 {
				t.Fatalf("SplitCommand(%q) let a NUL through: %q", s, args)
			}
		}
		again, err := SplitCommand(quote(args))
		if err != nil || !reflect.DeepEqual(again, args) {
			t.Fatalf("SplitCommand(%q) = %q; requoted as %q it splits to %q, %v", s, args, quote(args), again, err)
		}
	})
}
