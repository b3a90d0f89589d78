package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func sampleEntry() Entry {
	return Entry{
		Time:    t0,
		Actor:   "alice",
		Action:  "alias.move",
		Subject: "model/fraud-scorer/alias/prod",
		Before:  json.RawMessage(`{"version":1}`),
		After:   json.RawMessage(`{"version":2}`),
	}
}

func mustHash(t *testing.T, prev string, e Entry) string {
	t.Helper()
	h, err := Hash(prev, e)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

func TestHashDeterministic(t *testing.T) {
	e := sampleEntry()
	e.Seq = 1
	h1, h2 := mustHash(t, GenesisHash, e), mustHash(t, GenesisHash, e)
	if h1 != h2 {
		t.Fatalf("same entry hashed to %s and %s", h1, h2)
	}
	if len(h1) != 64 || strings.Trim(h1, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 lower-case hex digits", h1)
	}
	a, err := Seal(0, GenesisHash, sampleEntry())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(0, GenesisHash, sampleEntry())
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash != b.Hash || a.Hash != h1 {
		t.Fatalf("Seal hashes %s, %s; Hash gives %s", a.Hash, b.Hash, h1)
	}
	if a.Seq != 1 || a.PrevHash != GenesisHash {
		t.Fatalf("sealed first entry has seq %d prev %s", a.Seq, a.PrevHash)
	}
}

// TestHashCoversEveryField changes each hashed field in turn; every change
// must change the hash.
func TestHashCoversEveryField(t *testing.T) {
	base := sampleEntry()
	base.Seq = 7
	baseHash := mustHash(t, GenesisHash, base)
	mutations := map[string]func(*Entry){
		"seq":            func(e *Entry) { e.Seq = 8 },
		"time":           func(e *Entry) { e.Time = e.Time.Add(time.Nanosecond) },
		"actor":          func(e *Entry) { e.Actor = "mallory" },
		"actor empty":    func(e *Entry) { e.Actor = "" },
		"action":         func(e *Entry) { e.Action = "alias.delete" },
		"subject":        func(e *Entry) { e.Subject = "model/fraud-scorer/alias/staging" },
		"before value":   func(e *Entry) { e.Before = json.RawMessage(`{"version":3}`) },
		"before absent":  func(e *Entry) { e.Before = nil },
		"after value":    func(e *Entry) { e.After = json.RawMessage(`{"version":1}`) },
		"after string":   func(e *Entry) { e.After = json.RawMessage(`"{\"version\":2}"`) },
		"before↔after":   func(e *Entry) { e.Before, e.After = e.After, e.Before },
		"actor↔subject":  func(e *Entry) { e.Actor, e.Subject = e.Subject, e.Actor },
		"field boundary": func(e *Entry) { e.Actor, e.Action = "alicealias", ".move" },
	}
	seen := map[string]string{baseHash: "base"}
	for name, mutate := range mutations {
		e := base
		mutate(&e)
		h := mustHash(t, GenesisHash, e)
		if other, dup := seen[h]; dup {
			t.Errorf("mutation %q hashes the same as %q", name, other)
		}
		seen[h] = name
	}
	// The previous hash is part of the chain link too.
	prev := strings.Repeat("ab", 32)
	if mustHash(t, prev, base) == baseHash {
		t.Error("changing the previous hash does not change the hash")
	}
	// The stored Hash and PrevHash fields are not hashed content.
	e := base
	e.Hash, e.PrevHash = "whatever", "else"
	if mustHash(t, GenesisHash, e) != baseHash {
		t.Error("the Hash/PrevHash fields leaked into the canonical form")
	}
}

func TestHashTimeZoneIndependent(t *testing.T) {
	e := sampleEntry()
	e.Seq = 1
	utc := mustHash(t, GenesisHash, e)
	for _, name := range []string{"America/New_York", "Asia/Kolkata", "Pacific/Chatham"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			loc = time.FixedZone(name, 5*3600+45*60)
		}
		z := e
		z.Time = e.Time.In(loc)
		if h := mustHash(t, GenesisHash, z); h != utc {
			t.Errorf("time in %s hashes to %s, UTC to %s", name, h, utc)
		}
	}
	// A time read back from a string (no monotonic reading) hashes the same.
	parsed, err := time.Parse(TimeFormat, e.Time.UTC().Format(TimeFormat))
	if err != nil {
		t.Fatal(err)
	}
	z := e
	z.Time = parsed
	if mustHash(t, GenesisHash, z) != utc {
		t.Error("a time parsed back with TimeFormat hashes differently")
	}
	// Time with a monotonic reading hashes like its wall-clock value.
	now := time.Now()
	a, b := e, e
	a.Time, b.Time = now, now.Round(0)
	if mustHash(t, GenesisHash, a) != mustHash(t, GenesisHash, b) {
		t.Error("a monotonic clock reading changes the hash")
	}
}

func TestHashDocumentWhitespace(t *testing.T) {
	e := sampleEntry()
	e.Seq = 1
	e.Before = json.RawMessage(`{"version":1,"labels":{"a":"b c"}}`)
	want := mustHash(t, GenesisHash, e)
	for _, doc := range []string{
		`{ "version": 1, "labels": { "a": "b c" } }`,
		"{\n\t\"version\" : 1,\n\t\"labels\":{\"a\":\"b c\"}\n}\n",
		"  {\"version\":1,\"labels\":{\"a\":\"b c\"}}\r\n",
	} {
		w := e
		w.Before = json.RawMessage(doc)
		if got := mustHash(t, GenesisHash, w); got != want {
			t.Errorf("before %q hashes differently from its compact form", doc)
		}
	}
	// Whitespace inside a string is content.
	w := e
	w.Before = json.RawMessage(`{"version":1,"labels":{"a":"b  c"}}`)
	if mustHash(t, GenesisHash, w) == want {
		t.Error("whitespace inside a JSON string was compacted away")
	}
	// Absent and null documents are the same document.
	n1, n2 := e, e
	n1.After, n2.After = nil, json.RawMessage("null")
	if mustHash(t, GenesisHash, n1) != mustHash(t, GenesisHash, n2) {
		t.Error("absent and null after hash differently")
	}
}

func TestSealCompactsAndNormalises(t *testing.T) {
	loc := time.FixedZone("UTC+3", 3*3600)
	e := sampleEntry()
	e.Time = t0.In(loc)
	e.Before = json.RawMessage(" { \"version\" : 1 } ")
	e.After = nil
	s, err := Seal(41, strings.Repeat("cd", 32), e)
	if err != nil {
		t.Fatal(err)
	}
	if s.Seq != 42 || s.PrevHash != strings.Repeat("cd", 32) {
		t.Fatalf("sealed seq %d prev %s", s.Seq, s.PrevHash)
	}
	if s.Time.Location() != time.UTC || !s.Time.Equal(t0) {
		t.Fatalf("sealed time %v, want %v in UTC", s.Time, t0)
	}
	if string(s.Before) != `{"version":1}` || string(s.After) != "null" {
		t.Fatalf("sealed documents %s / %s, want compacted", s.Before, s.After)
	}
	// What a store reads back (the sealed fields) verifies.
	if mustHash(t, s.PrevHash, s) != s.Hash {
		t.Fatal("a sealed entry does not rehash to its own hash")
	}
}

func TestCanonicalForm(t *testing.T) {
	e := sampleEntry()
	e.Seq = 3
	e.Before = nil
	c, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":3,"time":"2025-03-14T15:09:26.535897932Z","actor":"alice","action":"alias.move",` +
		`"subject":"model/fraud-scorer/alias/prod","before":null,"after":{"version":2}}`
	if string(c) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", c, want)
	}
	// Whole seconds keep their nine fractional digits: fixed width.
	e.Time = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c, _ = Canonical(e)
	if !strings.Contains(string(c), `"time":"2025-01-02T03:04:05.000000000Z"`) {
		t.Fatalf("Canonical time not fixed width: %s", c)
	}
}

func TestHashRefusesBadInput(t *testing.T) {
	e := sampleEntry()
	for _, prev := range []string{"", "00", strings.Repeat("g", 64), GenesisHash + "00"} {
		if _, err := Hash(prev, e); err == nil {
			t.Errorf("Hash(%q) accepted a bad previous hash", prev)
		}
	}
	e.Before = json.RawMessage(`{"unterminated":`)
	if _, err := Hash(GenesisHash, e); err == nil {
		t.Error("Hash accepted invalid JSON in before")
	}
	if _, err := Seal(0, GenesisHash, e); err == nil {
		t.Error("Seal accepted invalid JSON in before")
	}
	e = sampleEntry()
	e.After = json.RawMessage(`nope`)
	if _, err := Seal(0, GenesisHash, e); err == nil {
		t.Error("Seal accepted invalid JSON in after")
	}
}

func TestDocument(t *testing.T) {
	if string(Document(nil)) != "null" {
		t.Error("Document(nil) is not null")
	}
	if got := string(Document(map[string]int{"b": 2, "a": 1})); got != `{"a":1,"b":2}` {
		t.Errorf("Document(map) = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Document(chan) did not panic")
		}
	}()
	Document(make(chan int))
}

// TestCanonicalRefusesInvalidUTF8: encoding/json would turn both "\xff" and
// "\xfe" into U+FFFD, so an edit between them would not change the hash.
func TestCanonicalRefusesInvalidUTF8(t *testing.T) {
	for name, mutate := range map[string]func(*Entry){
		"actor":   func(e *Entry) { e.Actor = "al\xffice" },
		"action":  func(e *Entry) { e.Action = "\xfe" },
		"subject": func(e *Entry) { e.Subject = "model/\xc0\xaf" },
	} {
		e := sampleEntry()
		mutate(&e)
		if _, err := Canonical(e); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Canonical with invalid UTF-8 in %s = %v, want an error naming it", name, err)
		}
		if _, err := Seal(0, GenesisHash, e); err == nil {
			t.Errorf("Seal accepted invalid UTF-8 in %s", name)
		}
	}
	// A stored row edited to hold invalid UTF-8 is a break, not a crash.
	es := []Entry{}
	e, _ := Seal(0, GenesisHash, sampleEntry())
	e.Actor = "\xff"
	es = append(es, e)
	if err := verifyAll(es, 1, e.Hash); err == nil {
		t.Error("an entry edited to invalid UTF-8 verified")
	}
}
