package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzHash checks the two properties the chain rests on: a sealed entry,
// read back as stored, rehashes to its own hash; and entries that differ in
// a string field or in the meaning-bearing bytes of a document never share
// a hash.
func FuzzHash(f *testing.F) {
	f.Add("alice", "bob", []byte(`{"a":1}`), []byte(` { "a" : 1 } `))
	f.Add("\xff", "\xfe", []byte(`"\u003c"`), []byte(`"<"`))
	f.Add("a", "a", []byte(`[1,2]`), []byte(`[2,1]`))
	f.Fuzz(func(t *testing.T, a, b string, doc1, doc2 []byte) {
		e1, e2 := sampleEntry(), sampleEntry()
		e1.Actor, e1.Before = a, doc1
		e2.Actor, e2.Before = b, doc2
		s1, err1 := Seal(0, GenesisHash, e1)
		s2, err2 := Seal(0, GenesisHash, e2)
		if err1 == nil {
			c, err := Canonical(s1)
			if err != nil || !json.Valid(c) {
				t.Fatalf("canonical form of a sealed entry: %q, %v", c, err)
			}
			if h, err := Hash(s1.PrevHash, s1); err != nil || h != s1.Hash {
				t.Fatalf("sealed entry rehashes to %s (%v), sealed as %s", h, err, s1.Hash)
			}
		}
		if err1 != nil || err2 != nil {
			return
		}
		if (a != b || !bytes.Equal(normalDoc(doc1), normalDoc(doc2))) && s1.Hash == s2.Hash {
			t.Fatalf("different entries share hash %s: actor %q/%q, before %q/%q", s1.Hash, a, b, doc1, doc2)
		}
	})
}

// normalDoc is the form in which two documents mean the same bytes to the
// hash: compact, with the characters encoding/json escapes escaped.
func normalDoc(doc []byte) []byte {
	if len(doc) == 0 {
		return []byte("null")
	}
	var c, h bytes.Buffer
	if err := json.Compact(&c, doc); err != nil {
		return nil
	}
	json.HTMLEscape(&h, c.Bytes())
	return h.Bytes()
}
