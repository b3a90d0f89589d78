package deployment

import (
	"context"
	"time"
)

// hasDown reports whether any route of the published table lists a
// version whose runtime could not start.
func (s *Service) hasDown() bool {
	t := s.routes.Load()
	if t == nil {
		return false
	}
	for _, r := range t.routes {
		if len(r.Down) > 0 {
			return true
		}
	}
	return false
}

// RetryDown starts again the versions whose runtimes could not start when
// the table was last published (an external server that was down when
// slipway started, a child that crashed at start) and publishes the table
// again. It does nothing while every served version runs, and reports
// whether it tried.
func (s *Service) RetryDown(ctx context.Context) (bool, error) {
	if !s.hasDown() {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasDown() { // a change published meanwhile
		return false, nil
	}
	return true, s.publish(ctx)
}

// WatchDown calls RetryDown every interval until ctx ends, so a version
// that could not start joins its split by itself once its runtime can
// start, instead of waiting for the next deployment change.
func (s *Service) WatchDown(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.RetryDown(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Log.Error("retrying versions that could not start", "err", err.Error())
			}
		}
	}
}
