// Package audit owns slipway's tamper-evident log: the entry, its canonical
// form, the hash chain h_i = sha256(h_{i-1} || canonical JSON of entry i) and
// the verifier that names the first entry where the chain breaks. It is pure:
// it imports domain and the standard library only, never a store.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// GenesisHash is the previous hash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Entry is one recorded mutation.
type Entry struct {
	// Seq numbers entries 1, 2, 3 … without gaps.
	Seq     int64           `json:"seq"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Subject string          `json:"subject"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	// PrevHash is the hex hash of entry Seq-1 (GenesisHash for the first).
	PrevHash string `json:"prev_hash"`
	// Hash is this entry's hex hash.
	Hash string `json:"hash"`
}

// canonical is the hashed part of an entry, fields in a fixed order.
type canonical struct {
	Seq     int64           `json:"seq"`
	Time    string          `json:"time"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Subject string          `json:"subject"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
}

// TimeFormat is how entry times are written, in UTC, both in the canonical
// form and in stores, so what is read back hashes to what was written.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// Canonical returns the bytes hashed for e: compact JSON with fields in a
// fixed order, time in UTC with nanoseconds, absent documents as null.
func Canonical(e Entry) ([]byte, error) {
	// encoding/json turns invalid UTF-8 into U+FFFD, so two different byte
	// strings would hash alike and an edit between them would go unseen.
	for _, f := range [...]struct{ name, v string }{{"actor", e.Actor}, {"action", e.Action}, {"subject", e.Subject}} {
		if !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("audit entry %d: %s %q is not valid UTF-8", e.Seq, f.name, f.v)
		}
	}
	before, err := compact(e.Before)
	if err != nil {
		return nil, fmt.Errorf("audit entry %d: before: %w", e.Seq, err)
	}
	after, err := compact(e.After)
	if err != nil {
		return nil, fmt.Errorf("audit entry %d: after: %w", e.Seq, err)
	}
	return json.Marshal(canonical{
		Seq: e.Seq, Time: e.Time.UTC().Format(TimeFormat), Actor: e.Actor,
		Action: e.Action, Subject: e.Subject, Before: before, After: after,
	})
}

func compact(doc json.RawMessage) (json.RawMessage, error) {
	if len(doc) == 0 {
		return json.RawMessage("null"), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Hash computes h_i = sha256(h_{i-1} || canonical(e)) as hex; the previous
// hash enters as its 32 raw bytes.
func Hash(prevHash string, e Entry) (string, error) {
	prev, err := hex.DecodeString(prevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", fmt.Errorf("previous hash %q is not a hex sha256", prevHash)
	}
	c, err := Canonical(e)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Seal fills e's Seq, PrevHash and Hash so that it follows the entry whose
// sequence number and hash are given (0 and GenesisHash for an empty log).
// Documents are stored compacted so that reading them back hashes the same.
func Seal(prevSeq int64, prevHash string, e Entry) (Entry, error) {
	var err error
	if e.Before, err = compact(e.Before); err != nil {
		return Entry{}, fmt.Errorf("audit entry before: %w", err)
	}
	if e.After, err = compact(e.After); err != nil {
		return Entry{}, fmt.Errorf("audit entry after: %w", err)
	}
	e.Seq = prevSeq + 1
	e.Time = e.Time.UTC()
	e.PrevHash = prevHash
	e.Hash, err = Hash(prevHash, e)
	return e, err
}

// Document marshals v for an entry's before or after; nil gives null.
func Document(v any) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only unmarshalable values (channels, funcs) fail; callers pass
		// domain structs, so this is a programming error.
		panic(fmt.Sprintf("audit document: %v", err))
	}
	return b
}
