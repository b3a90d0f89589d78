package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// FuzzFault: whatever JSON arrives, a fault that validates is within its
// bounds, has a status when it aborts, and survives a JSON round trip
// unchanged.
func FuzzFault(f *testing.F) {
	for _, s := range []string{
		`{"abort_percent":30}`, `{"abort_percent":100,"abort_status":500}`, `{"delay_percent":50,"delay":"50ms"}`,
		`{"abort_percent":0.0001,"delay_percent":100,"delay":"1m"}`, `{"delay":"-1s","delay_percent":1}`, `{"abort_percent":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ft domain.Fault
		if json.Unmarshal(b, &ft) != nil || ft.Validate() != nil {
			return
		}
		d := time.Duration(ft.Delay)
		if ft.AbortPercent < 0 || ft.AbortPercent > 100 || ft.DelayPercent < 0 || ft.DelayPercent > 100 ||
			ft.AbortPercent == 0 && ft.DelayPercent == 0 || d < 0 || d > domain.MaxFaultDelay || (ft.DelayPercent > 0) != (d > 0) ||
			ft.AbortPercent > 0 && (ft.AbortStatus < 400 || ft.AbortStatus > 599) {
			t.Fatalf("%s validated as %+v", b, ft)
		}
		out, err := json.Marshal(ft)
		if err != nil {
			t.Fatal(err)
		}
		var back domain.Fault
		if err := json.Unmarshal(out, &back); err != nil || back != ft || back.Validate() != nil {
			t.Fatalf("%s → %+v → %s → %+v, %v", b, ft, out, back, err)
		}
	})
}
