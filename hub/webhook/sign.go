package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of every delivery.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256>": see Sign.
	HeaderSignature = "Switchboard-Signature"
	// HeaderEventID is the event's id, also in the body: the same on every
	// attempt, so that a receiver can drop a repeat.
	HeaderEventID = "Switchboard-Event-Id"
	// HeaderEventType is the event's type, also in the body.
	HeaderEventType = "Switchboard-Event-Type"
)

// DefaultTolerance is how old a signature's timestamp Verify accepts by
// default: a replay of a captured request is refused after it.
const DefaultTolerance = 5 * time.Minute

// MinSecretLen is the shortest secret the command accepts.
const MinSecretLen = 32

// Sign returns the signature header's value for body sent at t:
// "t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<unix seconds>.<body>")>".
// Signing the timestamp with the body lets a receiver refuse replays; each
// attempt is signed afresh.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: signature timestamp outside the tolerance")
	ErrMalformed    = errors.New("webhook: malformed signature header")
)

// Verify checks a signature header against body, as a receiver does: the
// HMAC must match (any v1 of the header) and its timestamp be within
// tolerance of now (DefaultTolerance when 0). A receiver should also drop
// an event whose id it has seen.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return fmt.Errorf("verify: %w", ErrMalformed)
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("verify: %w", ErrMalformed)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("verify: %w", ErrStale)
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("verify: %w", ErrBadSignature)
}
