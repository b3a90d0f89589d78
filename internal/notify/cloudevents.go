package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/domain"
)

// Headers of every delivery. The signature is over the timestamp header,
// a dot and the raw body, so a captured request cannot be replayed later
// with a fresh timestamp.
const (
	HeaderSignature = "X-Slipway-Signature"
	HeaderTimestamp = "X-Slipway-Timestamp"
	HeaderEvent     = "X-Slipway-Event"
	HeaderDelivery  = "X-Slipway-Delivery"
	// ContentType is CloudEvents' structured mode in JSON.
	ContentType = "application/cloudevents+json; charset=utf-8"
)

// CloudEvent is the body of a delivery: a CloudEvents 1.0 event in
// structured mode, JSON encoding.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// body renders a delivery's event as the bytes every attempt sends.
func body(d domain.Delivery, source string) ([]byte, error) {
	data := d.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(CloudEvent{
		SpecVersion: "1.0", ID: d.EventID, Source: source, Type: TypePrefix + d.EventType,
		Subject: d.Subject, Time: d.EventTime.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json", Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("delivery %d: encoding the event: %w", d.ID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Sign returns the signature header value of body sent at the Unix time
// ts: "sha256=" and the hex HMAC-SHA256, keyed with the secret, of
// "<ts>.<body>".
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is what Verify returns for a request that was not
// signed with the secret, or whose timestamp is out of tolerance.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a delivery as a receiver would: the timestamp header
// within tolerance of now, and the signature header equal, in constant
// time, to Sign of the raw body.
func Verify(secret, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q is not Unix seconds: %w", truncate(timestamp, 40), ErrBadSignature)
	}
	if skew := now.Sub(time.Unix(ts, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("timestamp %d is %s away from now, more than %s: %w", ts, skew.Round(time.Second), tolerance, ErrBadSignature)
	}
	if !strings.HasPrefix(signature, "sha256=") {
		return fmt.Errorf("signature %q does not start with sha256=: %w", truncate(signature, 80), ErrBadSignature)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}
