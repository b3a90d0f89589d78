package runtime

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/slipway-ml/slipway/internal/artifact"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
)

// Option names, as given at push with --set key=value.
const (
	OptURL            = "url"
	OptProtocol       = "protocol"
	OptModelName      = "model_name"
	OptTimeout        = "timeout"
	OptCommand        = "command"
	OptHealthPath     = "health_path"
	OptStartupTimeout = "startup_timeout"
	OptEnvPrefix      = "env."
	OptModelFile      = "model_file"
)

// Defaults and bounds of the runtime options.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultStartupTimeout = 60 * time.Second
	// MaxTimeout bounds every duration option: a model that needs longer
	// than this to answer or to load is a configuration mistake.
	MaxTimeout = time.Hour
)

// Placeholders a process command and its env values may use.
const (
	PlaceholderPort        = "{port}"
	PlaceholderArtifactDir = "{artifact_dir}"
	PlaceholderModel       = "{model}"
	PlaceholderVersion     = "{version}"
)

var (
	placeholderPattern = regexp.MustCompile(`\{[a-z_]+\}`)
	envNamePattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ExternalOptions configure a version served by someone else's server.
type ExternalOptions struct {
	// URL is the server's base URL; slipway appends /v2/… or /v1/….
	URL      *url.URL
	Protocol Protocol
	// ModelName is the upstream's name for the model; empty means the
	// slipway model name.
	ModelName string
	// Timeout bounds how long the server may take to start answering a
	// request, and the health check at Start.
	Timeout time.Duration
}

// ProcessOptions configure a version served by a child process slipway
// starts, supervises and stops.
type ProcessOptions struct {
	// Command is the argv, split with shell-like quoting, placeholders not
	// yet expanded. No shell ever runs it.
	Command []string
	// Env holds extra environment variables; values may use placeholders.
	Env            map[string]string
	Protocol       Protocol
	HealthPath     string
	StartupTimeout time.Duration
	// ModelName is the name the server serves the model under; empty
	// means the slipway model name.
	ModelName string
}

// OpenAIOptions configure an openai version: exactly one of External (a
// url) and Process (a command) is set.
type OpenAIOptions struct {
	External *ExternalOptions
	Process  *ProcessOptions
}

// XGBoostJSONOptions configure an in-process XGBoost version.
type XGBoostJSONOptions struct {
	// ModelFile is the model's path inside the artifact; empty means the
	// artifact's only .json file.
	ModelFile string
}

// TemplateValues are what a process command's placeholders expand to.
type TemplateValues struct {
	Port        int
	ArtifactDir string
	Model       string
	Version     int
}

// Expand replaces {port}, {artifact_dir}, {model} and {version} in s.
func (v TemplateValues) Expand(s string) string {
	return strings.NewReplacer(
		PlaceholderPort, strconv.Itoa(v.Port),
		PlaceholderArtifactDir, v.ArtifactDir,
		PlaceholderModel, v.Model,
		PlaceholderVersion, strconv.Itoa(v.Version),
	).Replace(s)
}

// ValidateOptions checks a version's runtime config at push, so a version
// that cannot run is refused then rather than at deploy. A literal IP in a
// url must pass the default (loopback-only) egress policy; a server with a
// configured allowlist calls ValidateOptionsWithPolicy.
func ValidateOptions(f domain.Format, opts map[string]string, hasArtifact bool) error {
	return ValidateOptionsWithPolicy(egress.Default(), f, opts, hasArtifact)
}

// ValidateOptionsWithPolicy is ValidateOptions with the egress policy the
// server runs with (nil means the default).
func ValidateOptionsWithPolicy(p *egress.Policy, f domain.Format, opts map[string]string, hasArtifact bool) error {
	if err := domain.ValidateKeyValues("runtime option", opts); err != nil {
		return err
	}
	checkURL := func(o *ExternalOptions) error {
		if hasArtifact {
			return fmt.Errorf("%s version with a url points at a running server and carries no artifact; push it without a path: %w", withArticle(f), domain.ErrInvalid)
		}
		if _, err := p.CheckURL(o.URL.String()); err != nil {
			return fmt.Errorf("runtime option %q: %w", OptURL, err)
		}
		return nil
	}
	switch f {
	case domain.FormatExternal:
		o, err := ParseExternal(opts)
		if err != nil {
			return err
		}
		return checkURL(&o)
	case domain.FormatOpenAI:
		o, err := ParseOpenAI(opts)
		if err != nil {
			return err
		}
		if o.External != nil {
			return checkURL(o.External)
		}
		return artifactDirOption(f, *o.Process, hasArtifact)
	case domain.FormatProcess:
		o, err := ParseProcess(opts)
		if err != nil {
			return err
		}
		return artifactDirOption(f, o, hasArtifact)
	case domain.FormatXGBoostJSON:
		if !hasArtifact {
			return fmt.Errorf("%s version needs an artifact (a file or directory to push): %w", withArticle(f), domain.ErrInvalid)
		}
		_, err := ParseXGBoostJSON(opts)
		return err
	}
	_, err := domain.ParseFormat(string(f))
	return err
}

func artifactDirOption(f domain.Format, o ProcessOptions, hasArtifact bool) error {
	if hasArtifact {
		return nil
	}
	uses := slices.ContainsFunc(o.Command, func(s string) bool { return strings.Contains(s, PlaceholderArtifactDir) })
	for _, v := range o.Env {
		uses = uses || strings.Contains(v, PlaceholderArtifactDir)
	}
	if uses {
		return fmt.Errorf("runtime option %q uses %s but this %s version has no artifact; push it with a path: %w",
			OptCommand, PlaceholderArtifactDir, f, domain.ErrInvalid)
	}
	return nil
}

var (
	externalKeys = []string{OptURL, OptProtocol, OptModelName, OptTimeout}
	processKeys  = []string{OptCommand, OptProtocol, OptHealthPath, OptStartupTimeout, OptEnvPrefix + "NAME", OptModelName}
	xgboostKeys  = []string{OptModelFile}
)

// ParseExternal reads the options of an external version. The url's shape
// is checked, and literal addresses that no policy allows (metadata,
// link-local …); the allowlist is the runtime's to apply.
func ParseExternal(opts map[string]string) (ExternalOptions, error) {
	if err := onlyKeys(domain.FormatExternal, opts, externalKeys, false); err != nil {
		return ExternalOptions{}, err
	}
	proto, ok := opts[OptProtocol]
	if !ok {
		return ExternalOptions{}, fmt.Errorf("runtime option %q is required for an external version: %s or %s: %w",
			OptProtocol, ProtocolOIP, ProtocolOpenAI, domain.ErrInvalid)
	}
	return parseExternal(opts, proto)
}

func parseExternal(opts map[string]string, proto string) (ExternalOptions, error) {
	var o ExternalOptions
	var err error
	if o.Protocol, err = protocolOption(proto); err != nil {
		return o, err
	}
	raw, ok := opts[OptURL]
	if !ok || raw == "" {
		return o, fmt.Errorf("runtime option %q is required: the base URL of the model server, e.g. http://127.0.0.1:9000: %w", OptURL, domain.ErrInvalid)
	}
	if o.URL, err = anyAddressPolicy().CheckURL(raw); err != nil {
		return o, fmt.Errorf("runtime option %q: %w", OptURL, err)
	}
	if o.Protocol == ProtocolOpenAI && strings.HasSuffix(strings.TrimSuffix(o.URL.Path, "/"), "/v1") {
		return o, fmt.Errorf("runtime option %q is %q: give the server's base URL without /v1; slipway appends /v1/… itself: %w", OptURL, raw, domain.ErrInvalid)
	}
	if o.ModelName, err = modelNameOption(opts); err != nil {
		return o, err
	}
	o.Timeout, err = durationOption(opts, OptTimeout, DefaultTimeout)
	return o, err
}

// anyAddress allows every routable address, leaving only the always-refused
// ones: what a url must pass whatever the server's allowlist.
func anyAddressPolicy() *egress.Policy {
	return &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
}

// ParseProcess reads the options of a process version.
func ParseProcess(opts map[string]string) (ProcessOptions, error) {
	if err := onlyKeys(domain.FormatProcess, opts, processKeys, true); err != nil {
		return ProcessOptions{}, err
	}
	proto, ok := opts[OptProtocol]
	if !ok {
		proto = string(ProtocolOIP)
	}
	return parseProcess(opts, proto)
}

func parseProcess(opts map[string]string, proto string) (ProcessOptions, error) {
	var o ProcessOptions
	var err error
	if o.Protocol, err = protocolOption(proto); err != nil {
		return o, err
	}
	raw := opts[OptCommand]
	if strings.TrimSpace(raw) == "" {
		return o, fmt.Errorf("runtime option %q is required: the model server's command line, with %s where its port goes: %w",
			OptCommand, PlaceholderPort, domain.ErrInvalid)
	}
	if o.Command, err = SplitCommand(raw); err != nil {
		return o, fmt.Errorf("runtime option %q: %w", OptCommand, err)
	}
	if err := placeholdersOption(OptCommand, raw); err != nil {
		return o, err
	}
	usesPort := strings.Contains(raw, PlaceholderPort)
	for k, v := range opts {
		name, ok := strings.CutPrefix(k, OptEnvPrefix)
		if !ok {
			continue
		}
		if !envNamePattern.MatchString(name) {
			return o, fmt.Errorf("runtime option %q: environment variable name %q must match %s: %w", k, name, envNamePattern, domain.ErrInvalid)
		}
		if strings.ContainsRune(v, 0) {
			return o, fmt.Errorf("runtime option %q: value contains a NUL byte: %w", k, domain.ErrInvalid)
		}
		if err := placeholdersOption(k, v); err != nil {
			return o, err
		}
		usesPort = usesPort || strings.Contains(v, PlaceholderPort)
		if o.Env == nil {
			o.Env = map[string]string{}
		}
		o.Env[name] = v
	}
	if !usesPort {
		return o, fmt.Errorf("runtime option %q must use %s (in the command or an env.NAME value): slipway picks the port the server listens on: %w",
			OptCommand, PlaceholderPort, domain.ErrInvalid)
	}
	o.HealthPath = "/v2/health/ready"
	if o.Protocol == ProtocolOpenAI {
		o.HealthPath = "/v1/models"
	}
	if hp, ok := opts[OptHealthPath]; ok {
		if err := healthPathOption(hp); err != nil {
			return o, err
		}
		o.HealthPath = hp
	}
	if o.StartupTimeout, err = durationOption(opts, OptStartupTimeout, DefaultStartupTimeout); err != nil {
		return o, err
	}
	o.ModelName, err = modelNameOption(opts)
	return o, err
}

// ParseOpenAI reads the options of an openai version: a url (someone
// else's server) or a command (a process slipway runs), never both.
func ParseOpenAI(opts map[string]string) (OpenAIOptions, error) {
	if p, ok := opts[OptProtocol]; ok && p != string(ProtocolOpenAI) {
		return OpenAIOptions{}, fmt.Errorf("runtime option %q is %q, but an openai version always speaks %s; leave it out: %w",
			OptProtocol, p, ProtocolOpenAI, domain.ErrInvalid)
	}
	_, hasURL := opts[OptURL]
	_, hasCmd := opts[OptCommand]
	switch {
	case hasURL && hasCmd:
		return OpenAIOptions{}, fmt.Errorf("runtime options %q and %q are both given; an openai version has exactly one: a url of a running server or a command slipway runs: %w",
			OptURL, OptCommand, domain.ErrInvalid)
	case hasURL:
		if err := onlyKeys(domain.FormatOpenAI, opts, externalKeys, false); err != nil {
			return OpenAIOptions{}, err
		}
		o, err := parseExternal(opts, string(ProtocolOpenAI))
		return OpenAIOptions{External: &o}, err
	case hasCmd:
		if err := onlyKeys(domain.FormatOpenAI, opts, processKeys, true); err != nil {
			return OpenAIOptions{}, err
		}
		o, err := parseProcess(opts, string(ProtocolOpenAI))
		return OpenAIOptions{Process: &o}, err
	}
	return OpenAIOptions{}, fmt.Errorf("an openai version needs runtime option %q (a running server) or %q (a command slipway runs): %w",
		OptURL, OptCommand, domain.ErrInvalid)
}

// ParseXGBoostJSON reads the options of an xgboost-json version.
func ParseXGBoostJSON(opts map[string]string) (XGBoostJSONOptions, error) {
	if err := onlyKeys(domain.FormatXGBoostJSON, opts, xgboostKeys, false); err != nil {
		return XGBoostJSONOptions{}, err
	}
	mf, ok := opts[OptModelFile]
	if !ok {
		return XGBoostJSONOptions{}, nil
	}
	if err := artifact.ValidatePath(mf); err != nil {
		return XGBoostJSONOptions{}, fmt.Errorf("runtime option %q: %w", OptModelFile, err)
	}
	if !strings.HasSuffix(mf, ".json") {
		return XGBoostJSONOptions{}, fmt.Errorf("runtime option %q is %q; an xgboost-json model file ends in .json: %w", OptModelFile, mf, domain.ErrInvalid)
	}
	return XGBoostJSONOptions{ModelFile: mf}, nil
}

// onlyKeys refuses an option the format does not take, naming it and
// listing the ones it does.
func onlyKeys(f domain.Format, opts map[string]string, accepted []string, env bool) error {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(accepted, k) || (env && strings.HasPrefix(k, OptEnvPrefix)) {
			continue
		}
		list := slices.Clone(accepted)
		slices.Sort(list)
		return fmt.Errorf("runtime option %q is not known to %s version%s; accepted: %s: %w",
			k, withArticle(f), modeNote(f, opts), strings.Join(list, ", "), domain.ErrInvalid)
	}
	return nil
}

// withArticle puts "a" or "an" before a format name.
func withArticle(f domain.Format) string {
	if f != "" && strings.IndexByte("aeiox", f[0]) >= 0 {
		return "an " + string(f)
	}
	return "a " + string(f)
}

func modeNote(f domain.Format, opts map[string]string) string {
	if f != domain.FormatOpenAI {
		return ""
	}
	if _, ok := opts[OptURL]; ok {
		return " with a url"
	}
	return " with a command"
}

func protocolOption(s string) (Protocol, error) {
	switch Protocol(s) {
	case ProtocolOIP, ProtocolOpenAI:
		return Protocol(s), nil
	}
	return "", fmt.Errorf("runtime option %q is %q; it must be %s or %s: %w", OptProtocol, s, ProtocolOIP, ProtocolOpenAI, domain.ErrInvalid)
}

func modelNameOption(opts map[string]string) (string, error) {
	s, ok := opts[OptModelName]
	if !ok {
		return "", nil
	}
	if s == "" || len(s) > 256 {
		return "", fmt.Errorf("runtime option %q must be 1 to 256 bytes: %w", OptModelName, domain.ErrInvalid)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return "", fmt.Errorf("runtime option %q contains a control character or invalid UTF-8: %w", OptModelName, domain.ErrInvalid)
		}
	}
	return s, nil
}

func durationOption(opts map[string]string, key string, def time.Duration) (time.Duration, error) {
	s, ok := opts[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("runtime option %q is %q, not a duration like 30s or 2m: %w", key, s, domain.ErrInvalid)
	}
	if d <= 0 || d > MaxTimeout {
		return 0, fmt.Errorf("runtime option %q is %s; it must be more than 0 and at most %s: %w", key, d, MaxTimeout, domain.ErrInvalid)
	}
	return d, nil
}

func healthPathOption(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("runtime option %q is %q: %s: %w", OptHealthPath, p, why, domain.ErrInvalid)
	}
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return bad("it must be a path starting with a single /, e.g. /health")
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '#' || r == '\\' {
			return bad("it may not contain spaces, control characters, '#' or '\\'")
		}
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return bad("it does not parse as a request path")
	}
	return nil
}

// checkPlaceholders refuses an unknown {name}, which would otherwise reach
// the process verbatim.
func placeholdersOption(key, s string) error {
	known := []string{PlaceholderPort, PlaceholderArtifactDir, PlaceholderModel, PlaceholderVersion}
	for _, m := range placeholderPattern.FindAllString(s, -1) {
		if !slices.Contains(known, m) {
			return fmt.Errorf("runtime option %q uses the unknown placeholder %s; known: %s: %w", key, m, strings.Join(known, ", "), domain.ErrInvalid)
		}
	}
	return nil
}

// SplitCommand splits a command line into argv the way a POSIX shell
// would for words and quotes alone: whitespace separates words, '…' keeps
// everything literally, "…" keeps everything but \" and \\, and a
// backslash outside quotes escapes the next character. Nothing is
// expanded and no shell runs, so an unquoted shell operator (| & ; < > ( )
// $ `) is refused rather than passed on as an argument nobody meant.
func SplitCommand(s string) ([]string, error) {
	var (
		args   []string
		cur    strings.Builder
		inWord bool
	)
	bad := func(why string) error {
		return fmt.Errorf("command %q: %s: %w", clipForError(s, 120), why, domain.ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, bad("contains a NUL byte")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, bad("ends in a lone backslash")
			}
			i++
			if s[i] != '\n' { // backslash-newline continues the line
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, bad("has an unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, bad("has an unterminated double quote")
			}
			inWord = true
		case strings.IndexByte("|&;<>()$`", c) >= 0:
			return nil, bad(fmt.Sprintf("has an unquoted %q; no shell runs the command, so quote it to pass it literally, or run sh -c '…' explicitly", c))
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, bad("is empty")
	}
	return args, nil
}

func clipForError(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
