package deployment

import (
	"hash/fnv"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// Table is the routing state the gateway reads: for every model and
// environment, the versions served with their weights and endpoints. A
// Table is immutable once published; changes publish a new one, so the
// gateway's hot path reads it with one atomic load and takes no lock.
type Table struct {
	routes map[routeKey]*Route
}

type routeKey struct{ model, env string }

// Route is what one environment serves of one model.
type Route struct {
	Model       string
	Environment string
	Revision    int64
	// Versions are in version order; with Down, weights sum to 100.
	Versions []RouteVersion
	// Down are the deployment's versions whose runtime could not start,
	// in version order, with their weights. Pick keeps their ranges, so
	// the other versions' callers do not move, and gives their share to
	// the stable version.
	Down []DownVersion
	// Stable is the version the gateway falls back to when another
	// version's breaker is open or its call failed; 0 for none. It may be
	// missing from Versions when its runtime could not start.
	Stable int
	// Sticky, when set, names the request key whose hash picks the
	// version (Bucket), so one caller stays on one version while the
	// weights stay put.
	Sticky *domain.StickyKey
	// Rules send a request whose header matches to a version; the first
	// match wins. Rules whose version could not start are left out.
	Rules []RouteRule
	// Shadow, when set, gets a copy of Percent of the requests.
	Shadow *RouteShadow
	// Limits bound the deployment's rate and each version's concurrency.
	Limits domain.RouteLimits
}

// DownVersion is a served version whose runtime could not start.
type DownVersion struct {
	Version int
	Weight  int
}

// RouteRule is a match rule with its version resolved.
type RouteRule struct {
	domain.MatchRule
	Target *RouteVersion
}

// RouteShadow is the version mirrored requests go to.
type RouteShadow struct {
	Target  *RouteVersion
	Percent float64
}

// RouteVersion is one served version and where its requests go.
type RouteVersion struct {
	Version  int
	Weight   int
	Endpoint runtime.Endpoint
	// UpstreamModel is the name the endpoint knows the model by (for
	// remote servers whose name differs from slipway's).
	UpstreamModel string
	// PricePerMTokPrompt and PricePerMTokCompletion are what a million
	// prompt and completion tokens of this version cost, in the
	// deployment's currency units; the gateway turns OpenAI usage into
	// cost with them. Zero means free (or unpriced).
	PricePerMTokPrompt     float64
	PricePerMTokCompletion float64
	// Fault, when set, is injected into the version's requests by the
	// gateway before they are forwarded; nil (the usual case) costs the
	// hot path one comparison.
	Fault *domain.Fault
}

// Lookup returns the route of a model in an environment, or nil.
func (t *Table) Lookup(model, env string) *Route {
	if t == nil {
		return nil
	}
	return t.routes[routeKey{model, env}]
}

// Models lists the models an environment serves, for /v1/models and /v2.
func (t *Table) Models(env string) []*Route {
	if t == nil {
		return nil
	}
	var out []*Route
	for k, r := range t.routes {
		if k.env == env {
			out = append(out, r)
		}
	}
	return out
}

// Version returns the served version n of a route, or nil when the route
// does not serve it.
func (r *Route) Version(n int) *RouteVersion {
	for i := range r.Versions {
		if r.Versions[i].Version == n {
			return &r.Versions[i]
		}
	}
	return nil
}

// IsDown reports whether version n is deployed but could not start.
func (r *Route) IsDown(n int) bool {
	for _, d := range r.Down {
		if d.Version == n {
			return true
		}
	}
	return false
}

// StableVersion returns the served stable version, or nil when the route
// has none (or it could not start).
func (r *Route) StableVersion() *RouteVersion {
	if r.Stable == 0 {
		return nil
	}
	return r.Version(r.Stable)
}

// Pick chooses a version for a request given a number u uniformly drawn
// from [0, 100): versions own consecutive ranges of width equal to their
// weight, in version order. A range of a version that could not start
// (Down) goes to the stable version; Pick returns nil when that is down
// too, or when no version takes traffic.
func (r *Route) Pick(u int) *RouteVersion {
	acc, d := 0, 0
	for i := range r.Versions {
		for ; d < len(r.Down) && r.Down[d].Version < r.Versions[i].Version; d++ {
			if acc += r.Down[d].Weight; u < acc {
				return r.StableVersion()
			}
		}
		acc += r.Versions[i].Weight
		if u < acc {
			return &r.Versions[i]
		}
	}
	for ; d < len(r.Down); d++ {
		if acc += r.Down[d].Weight; u < acc {
			return r.StableVersion()
		}
	}
	return nil
}

// Bucket is where a sticky key falls in [0, 100): a hash of the model's
// name and the key, the same in every process and across restarts. Pick
// with the bucket keeps a caller on one version while the weights stay
// put; when they change, only callers whose bucket changes owner move.
func (r *Route) Bucket(key []byte) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(r.Model))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(key)
	return int(h.Sum64() % 100)
}

// NewTable builds a table from routes; a later route for the same model
// and environment replaces an earlier one.
func NewTable(routes ...*Route) *Table {
	t := &Table{routes: make(map[routeKey]*Route, len(routes))}
	for _, r := range routes {
		t.routes[routeKey{r.Model, r.Environment}] = r
	}
	return t
}
