package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// chain seals n entries in order, as a store appending them would.
func chain(t *testing.T, n int) []Entry {
	t.Helper()
	var out []Entry
	seq, hash := int64(0), GenesisHash
	for i := range n {
		e, err := Seal(seq, hash, Entry{
			Time:    t0.Add(time.Duration(i) * time.Second),
			Actor:   "alice",
			Action:  "version.create",
			Subject: fmt.Sprintf("model/m/version/%d", i+1),
			After:   Document(map[string]int{"version": i + 1}),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		seq, hash = e.Seq, e.Hash
	}
	return out
}

// verifyAll runs the verifier over entries and returns the first break, or
// the result of Finish against head.
func verifyAll(entries []Entry, headSeq int64, headHash string) error {
	v := NewVerifier()
	for _, e := range entries {
		if err := v.Next(e); err != nil {
			return err
		}
	}
	return v.Finish(headSeq, headHash)
}

func breakIndex(t *testing.T, err error) int64 {
	t.Helper()
	var brk *BreakError
	if !errors.As(err, &brk) {
		t.Fatalf("error %v is not a *BreakError", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("entry %d", brk.Index)) {
		t.Errorf("message %q does not name entry %d", err, brk.Index)
	}
	return brk.Index
}

func TestVerifyChain(t *testing.T) {
	for _, n := range []int{0, 1, 2, 50} {
		entries := chain(t, n)
		headSeq, headHash := int64(0), GenesisHash
		if n > 0 {
			headSeq, headHash = entries[n-1].Seq, entries[n-1].Hash
		}
		if err := verifyAll(entries, headSeq, headHash); err != nil {
			t.Errorf("chain of %d: %v", n, err)
		}
	}
	// An empty log may record its head as "" rather than the genesis hash.
	if err := NewVerifier().Finish(0, ""); err != nil {
		t.Errorf("empty log with empty head: %v", err)
	}
}

// TestVerifyDetectsTampering edits an in-memory log every way a person with
// database access could, and checks the index the verifier blames.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 6
	orig := chain(t, n)
	head := orig[n-1]
	tests := []struct {
		name   string
		tamper func([]Entry) []Entry
		want   int64
	}{
		{"edit actor of 3", func(es []Entry) []Entry { es[2].Actor = "mallory"; return es }, 3},
		{"edit action of 1", func(es []Entry) []Entry { es[0].Action = "noop"; return es }, 1},
		{"edit after of 6", func(es []Entry) []Entry { es[5].After = Document("x"); return es }, 6},
		{"edit time of 4", func(es []Entry) []Entry { es[3].Time = es[3].Time.Add(time.Second); return es }, 4},
		{"edit hash of 2", func(es []Entry) []Entry { es[1].Hash = strings.Repeat("0", 64); return es }, 2},
		{"edit prev hash of 5", func(es []Entry) []Entry { es[4].PrevHash = es[2].Hash; return es }, 5},
		{"edit 3 and reseal it", func(es []Entry) []Entry {
			es[2].Subject = "model/m/version/99"
			es[2].Hash, _ = Hash(es[2].PrevHash, es[2])
			return es
		}, 4},
		{"delete 1", func(es []Entry) []Entry { return slices.Delete(es, 0, 1) }, 1},
		{"delete 4", func(es []Entry) []Entry { return slices.Delete(es, 3, 4) }, 4},
		{"delete 2..3", func(es []Entry) []Entry { return slices.Delete(es, 1, 3) }, 2},
		{"swap 2 and 3", func(es []Entry) []Entry { es[1], es[2] = es[2], es[1]; return es }, 2},
		{"move 6 to the front", func(es []Entry) []Entry { return append([]Entry{es[5]}, es[:5]...) }, 1},
		{"renumber after swap", func(es []Entry) []Entry {
			es[1], es[2] = es[2], es[1]
			es[1].Seq, es[2].Seq = 2, 3
			return es
		}, 2},
		{"duplicate 3", func(es []Entry) []Entry { return slices.Insert(es, 3, es[2]) }, 4},
		{"duplicate 6 at the end", func(es []Entry) []Entry { return append(es, es[5]) }, 7},
		{"insert a forged entry after 2", func(es []Entry) []Entry {
			forged, _ := Seal(2, es[1].Hash, Entry{Time: t0, Actor: "mallory", Action: "token.create", Subject: "token/x"})
			return slices.Insert(es, 2, forged)
		}, 4},
		{"truncate 6", func(es []Entry) []Entry { return es[:5] }, 6},
		{"truncate 3..6", func(es []Entry) []Entry { return es[:2] }, 3},
		{"truncate all", func(es []Entry) []Entry { return nil }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := tt.tamper(slices.Clone(orig))
			err := verifyAll(es, head.Seq, head.Hash)
			if err == nil {
				t.Fatal("tampering went undetected")
			}
			if got := breakIndex(t, err); got != tt.want {
				t.Fatalf("break at entry %d, want %d: %v", got, tt.want, err)
			}
		})
	}
}

func TestFinish(t *testing.T) {
	es := chain(t, 3)
	v := NewVerifier()
	for _, e := range es {
		if err := v.Next(e); err != nil {
			t.Fatal(err)
		}
	}
	if v.Checked() != 3 {
		t.Fatalf("Checked() = %d", v.Checked())
	}
	tests := []struct {
		name     string
		headSeq  int64
		headHash string
		want     int64 // 0: no break
	}{
		{"matching head", 3, es[2].Hash, 0},
		{"tail truncated by one", 4, "ff" + es[2].Hash[2:], 4},
		{"tail truncated by many", 10, es[2].Hash, 4},
		{"more rows than appended", 2, es[1].Hash, 3},
		{"mismatched head hash", 3, es[1].Hash, 3},
		{"empty head hash for non-empty log", 3, "", 3},
	}
	for _, tt := range tests {
		err := v.Finish(tt.headSeq, tt.headHash)
		if tt.want == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: not detected", tt.name)
			continue
		}
		if got := breakIndex(t, err); got != tt.want {
			t.Errorf("%s: break at %d, want %d", tt.name, got, tt.want)
		}
	}
}

// memLog is an audit log in a slice. appendOnScan entries are added to the
// log after the head has been read, as a concurrent writer would.
type memLog struct {
	entries      []Entry
	headSeq      int64
	headHash     string
	appendOnHead []Entry
	scanErr      error
	headErr      error
}

func newMemLog(es []Entry) *memLog {
	l := &memLog{entries: es, headHash: GenesisHash}
	if len(es) > 0 {
		l.headSeq, l.headHash = es[len(es)-1].Seq, es[len(es)-1].Hash
	}
	return l
}

func (l *memLog) AuditHead(context.Context) (int64, string, error) {
	seq, hash := l.headSeq, l.headHash
	// A writer appends right after the head was read.
	for _, e := range l.appendOnHead {
		l.entries = append(l.entries, e)
		l.headSeq, l.headHash = e.Seq, e.Hash
	}
	return seq, hash, l.headErr
}

func (l *memLog) ScanAudit(ctx context.Context, fn func(Entry) error) error {
	if l.scanErr != nil {
		return l.scanErr
	}
	for _, e := range l.entries {
		if err := fn(e); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	return nil
}

var _ Log = (*memLog)(nil)

func TestVerifyLog(t *testing.T) {
	ctx := context.Background()
	es := chain(t, 8)

	t.Run("ok", func(t *testing.T) {
		r, err := VerifyLog(ctx, newMemLog(slices.Clone(es)))
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Entries != 8 || r.Head != es[7].Hash || r.FirstBadIndex != 0 || r.Reason != "" {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("empty", func(t *testing.T) {
		r, err := VerifyLog(ctx, newMemLog(nil))
		if err != nil || !r.OK || r.Entries != 0 {
			t.Fatalf("report %+v, %v", r, err)
		}
	})
	t.Run("edited", func(t *testing.T) {
		bad := slices.Clone(es)
		bad[4].Actor = "mallory"
		r, err := VerifyLog(ctx, newMemLog(bad))
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.FirstBadIndex != 5 || r.Entries != 4 || !strings.Contains(r.Reason, "entry 5") {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("tail deleted", func(t *testing.T) {
		l := newMemLog(slices.Clone(es))
		l.entries = l.entries[:6]
		r, err := VerifyLog(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.FirstBadIndex != 7 || r.Entries != 6 {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("appended after head was read", func(t *testing.T) {
		all := chain(t, 11)
		l := newMemLog(slices.Clone(all[:8]))
		l.appendOnHead = all[8:]
		r, err := VerifyLog(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Entries != 8 || r.Head != all[7].Hash {
			t.Fatalf("report %+v, want the 8 entries up to the head read", r)
		}
	})
	t.Run("broken entry appended after head is ignored", func(t *testing.T) {
		all := chain(t, 9)
		all[8].Actor = "edited later"
		l := newMemLog(slices.Clone(all[:8]))
		l.appendOnHead = all[8:]
		r, err := VerifyLog(ctx, l)
		if err != nil || !r.OK || r.Entries != 8 {
			t.Fatalf("report %+v, %v", r, err)
		}
	})
	t.Run("gap before head still detected with appends", func(t *testing.T) {
		all := chain(t, 10)
		l := newMemLog(slices.Delete(slices.Clone(all[:8]), 2, 3))
		l.headSeq, l.headHash = 8, all[7].Hash
		l.appendOnHead = all[8:]
		r, err := VerifyLog(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.FirstBadIndex != 3 {
			t.Fatalf("report %+v, want a break at 3", r)
		}
	})
	t.Run("read errors", func(t *testing.T) {
		boom := errors.New("disk on fire")
		l := newMemLog(es)
		l.scanErr = boom
		if _, err := VerifyLog(ctx, l); !errors.Is(err, boom) {
			t.Fatalf("scan error: %v", err)
		}
		l = newMemLog(es)
		l.headErr = boom
		if _, err := VerifyLog(ctx, l); !errors.Is(err, boom) {
			t.Fatalf("head error: %v", err)
		}
	})
}
