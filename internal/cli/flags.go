package cli

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

func sortStrings(s []string) { sort.Strings(s) }

// parseKV turns repeated key=value flags into a map, refusing duplicates
// and entries without '='.
func parseKV(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q must be key=value", flag, it)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--%s %s is given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// parseMetrics turns repeated name=number flags into a map.
func parseMetrics(items []string) (map[string]float64, error) {
	kv, err := parseKV("metric", items)
	if err != nil || kv == nil {
		return nil, err
	}
	m := make(map[string]float64, len(kv))
	for k, v := range kv {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("--metric %s=%s: %q is not a number", k, v, v)
		}
		// ParseFloat accepts "Inf" and "NaN", which JSON cannot carry.
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("--metric %s=%s: metrics must be finite numbers", k, v)
		}
		m[k] = f
	}
	return m, nil
}

// optionalInt parses a flag that may be absent ("" → nil).
func optionalInt(flag, s string) (*int, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("--%s %q must be a version number, or 0 for \"must not exist\"", flag, s)
	}
	return &n, nil
}
