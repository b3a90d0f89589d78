package audit

import "fmt"

// BreakError says where and why the chain breaks.
type BreakError struct {
	// Index is the sequence number (1-based) of the first entry that does
	// not verify.
	Index  int64
	Reason string
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit chain breaks at entry %d: %s", e.Index, e.Reason)
}

// Verifier checks entries one at a time, in sequence order, so a log of any
// length verifies in constant memory.
type Verifier struct {
	seq  int64
	hash string
}

// NewVerifier starts at the genesis of the chain.
func NewVerifier() *Verifier { return &Verifier{hash: GenesisHash} }

// Checked returns how many entries verified so far.
func (v *Verifier) Checked() int64 { return v.seq }

// Next checks the next entry. It returns a *BreakError naming the index
// where the chain breaks: a gap (deleted row), an out-of-order row, a
// previous-hash mismatch (reordered or inserted rows) or a hash that does
// not match the entry's content (an edited row).
func (v *Verifier) Next(e Entry) error {
	want := v.seq + 1
	switch {
	case e.Seq > want:
		return &BreakError{Index: want, Reason: fmt.Sprintf("entry %d is missing (next stored entry is %d)", want, e.Seq)}
	case e.Seq < want:
		return &BreakError{Index: want, Reason: fmt.Sprintf("entry %d appears again after entry %d", e.Seq, v.seq)}
	}
	if e.PrevHash != v.hash {
		return &BreakError{Index: want, Reason: "its previous-hash does not match the hash of the entry before it (rows reordered, inserted or edited)"}
	}
	h, err := Hash(v.hash, e)
	if err != nil {
		return &BreakError{Index: want, Reason: err.Error()}
	}
	if h != e.Hash {
		return &BreakError{Index: want, Reason: "its content does not match its hash (the row was edited)"}
	}
	v.seq, v.hash = e.Seq, e.Hash
	return nil
}

// Finish compares the verified chain with the head the store recorded with
// the last append, which catches rows deleted from the end of the log.
func (v *Verifier) Finish(headSeq int64, headHash string) error {
	if headSeq != v.seq {
		if headSeq > v.seq {
			return &BreakError{Index: v.seq + 1, Reason: fmt.Sprintf("the log ends at entry %d but %d entries were appended", v.seq, headSeq)}
		}
		return &BreakError{Index: headSeq + 1, Reason: fmt.Sprintf("the log holds %d entries but only %d were appended", v.seq, headSeq)}
	}
	if headHash != v.hash && !(headSeq == 0 && headHash == "") {
		return &BreakError{Index: v.seq, Reason: "the last entry's hash does not match the recorded head of the chain"}
	}
	return nil
}
