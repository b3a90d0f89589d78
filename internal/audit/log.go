package audit

import (
	"context"
	"errors"
)

// Log is the read side of a stored audit log.
type Log interface {
	ScanAudit(ctx context.Context, fn func(Entry) error) error
	AuditHead(ctx context.Context) (seq int64, hash string, err error)
}

// Report is the outcome of verifying a whole log.
type Report struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	Head    string `json:"head_hash,omitempty"`
	// FirstBadIndex is the sequence number of the first entry that does not
	// verify; 0 when OK.
	FirstBadIndex int64  `json:"first_bad_index,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// VerifyLog walks the whole log in order and reports the first break. An
// error is returned only when the log cannot be read at all.
func VerifyLog(ctx context.Context, l Log) (Report, error) {
	// Read the head first: entries appended while the scan runs come after
	// it, and the scan stops at the head.
	headSeq, headHash, err := l.AuditHead(ctx)
	if err != nil {
		return Report{}, err
	}
	v := NewVerifier()
	var brk *BreakError
	stop := errors.New("stop")
	err = l.ScanAudit(ctx, func(e Entry) error {
		if e.Seq > headSeq && v.Checked() == headSeq {
			return stop
		}
		if err := v.Next(e); err != nil {
			errors.As(err, &brk)
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return Report{}, err
	}
	if brk == nil {
		if err := v.Finish(headSeq, headHash); err != nil {
			errors.As(err, &brk)
		}
	}
	if brk != nil {
		return Report{OK: false, Entries: v.Checked(), FirstBadIndex: brk.Index, Reason: brk.Error()}, nil
	}
	return Report{OK: true, Entries: v.Checked(), Head: headHash}, nil
}
