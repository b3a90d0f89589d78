// Package runtime owns how a registered version runs: the small Runtime
// interface every runtime implements, the options each format accepts
// (validated at push, so a version that cannot run is refused then), and the
// factory that picks a runtime by format with an explicit switch.
// Implementations live in subpackages: xgboost (in process), process (a
// supervised child process), external (someone else's server). It never
// imports the gateway, deployments or stores.
package runtime

import (
	"context"
	"net/http"
	"net/url"
)

// Protocol is the wire protocol an endpoint speaks.
type Protocol string

// Protocols.
const (
	// ProtocolOIP is the Open Inference Protocol v2 (KServe, Triton).
	ProtocolOIP Protocol = "oip-v2"
	// ProtocolOpenAI is the OpenAI HTTP API (vLLM, llama.cpp, TGI …).
	ProtocolOpenAI Protocol = "openai"
)

// Endpoint is where the gateway sends a version's requests: either an
// in-process handler or a base URL reached through Transport.
type Endpoint struct {
	Protocol Protocol
	// Handler serves requests in process (paths as the gateway receives
	// them, e.g. /v2/models/{name}/infer). Nil for remote endpoints.
	Handler http.Handler
	// URL is the base URL of a remote server; Transport is the only way
	// to reach it (it enforces the egress policy).
	URL       *url.URL
	Transport http.RoundTripper
	// Track, when set, says that Transport only counts the requests of
	// the transport it wraps (its Unwrap method): a caller that speaks
	// HTTP over that transport's dialer itself, as the gateway's HTTP/1.1
	// path does, calls Track as a request starts and the function it
	// returns once the answer is read or abandoned, so the count that
	// decides when a retired version may stop stays right.
	Track func() (done func())
}

// Runtime runs one version.
type Runtime interface {
	// Start makes the version ready to serve: load the model, spawn and
	// wait for the process, or check the remote server. It returns the
	// runtime's own error when the version cannot run.
	Start(ctx context.Context) error
	// Endpoint says where requests go; valid after Start returned nil.
	Endpoint() Endpoint
	// Health reports whether the version can serve right now.
	Health(ctx context.Context) error
	// Stop releases everything Start acquired.
	Stop(ctx context.Context) error
}
