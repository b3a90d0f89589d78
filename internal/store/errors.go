package store

import (
	"fmt"

	"github.com/slipway-ml/slipway/internal/domain"
)

type limitError struct{ limit int }

func (e *limitError) Error() string {
	return fmt.Sprintf("page limit %d must be between 1 and %d", e.limit, MaxLimit)
}

func (e *limitError) Unwrap() error { return domain.ErrInvalid }
