package clients

import (
	"time"

	"golang.org/x/time/rate"
)

// Abuse thresholds of the rate limits.
const (
	// abuseAfter is how long a connection may stay over its rate limits,
	// without a second's pause, before it is closed with 1008.
	abuseAfter = 5 * time.Second
	// errorEvery caps the rate_limited error frames sent to one connection,
	// so a flood cannot overflow the flooder's own queue.
	errorEvery = time.Second
)

// limiter applies a connection's rate limits, one on frames and one on
// bytes, and tracks sustained abuse. It is used only by the session's read
// loop.
type limiter struct {
	frames *rate.Limiter // nil: no limit on frames
	bytes  *rate.Limiter // nil: no limit on bytes

	overSince  time.Time // start of the current run of rejections
	lastReject time.Time
	lastError  time.Time
}

// newLimiter returns a limiter of frames per second with bursts of twice
// that, and of bytes per second with bursts of maxFrame (so that one frame
// of the largest size always fits in a full bucket). Zero rates are no
// limit.
func newLimiter(frames rate.Limit, bytes int, maxFrame int64) limiter {
	var l limiter
	if frames > 0 {
		l.frames = rate.NewLimiter(frames, int(2*frames))
	}
	if bytes > 0 {
		l.bytes = rate.NewLimiter(rate.Limit(bytes), int(maxFrame))
	}
	return l
}

// verdict is what the read loop does with a frame.
type verdict int

const (
	admit       verdict = iota // handle the frame
	drop                       // ignore it silently
	dropAndTell                // ignore it and send rate_limited
	disconnect                 // close the connection with 1008
)

// check decides about a frame of n bytes arriving at now. A rejected frame
// spends nothing of either budget. With dropAndTell, why is the message of
// the rate_limited error.
func (l *limiter) check(now time.Time, n int) (v verdict, why string) {
	switch {
	case l.frames != nil && l.frames.TokensAt(now) < 1:
		why = "too many frames: slow down"
	case l.bytes != nil && l.bytes.TokensAt(now) < float64(n):
		why = "too many bytes: slow down"
	default:
		if l.frames != nil {
			l.frames.AllowN(now, 1)
		}
		if l.bytes != nil {
			l.bytes.AllowN(now, n)
		}
		return admit, ""
	}
	if now.Sub(l.lastReject) > time.Second {
		l.overSince = now
	}
	l.lastReject = now
	if now.Sub(l.overSince) >= abuseAfter {
		return disconnect, why
	}
	if now.Sub(l.lastError) >= errorEvery {
		l.lastError = now
		return dropAndTell, why
	}
	return drop, why
}
