package clients

import (
	"time"

	"golang.org/x/time/rate"
)

// Abuse thresholds of the rate limit.
const (
	// abuseAfter is how long a connection may stay over its rate limit,
	// without a second's pause, before it is closed with 1008.
	abuseAfter = 5 * time.Second
	// errorEvery caps the rate_limited error frames sent to one connection,
	// so a flood cannot overflow the flooder's own queue.
	errorEvery = time.Second
)

// limiter applies a connection's rate limit and tracks sustained abuse. It
// is used only by the session's read loop.
type limiter struct {
	lim *rate.Limiter // nil: no limit

	overSince  time.Time // start of the current run of rejections
	lastReject time.Time
	lastError  time.Time
}

func newLimiter(r rate.Limit) limiter {
	if r <= 0 {
		return limiter{}
	}
	return limiter{lim: rate.NewLimiter(r, int(2*r))}
}

// verdict is what the read loop does with a frame.
type verdict int

const (
	admit       verdict = iota // handle the frame
	drop                       // ignore it silently
	dropAndTell                // ignore it and send rate_limited
	disconnect                 // close the connection with 1008
)

// check decides about a frame arriving at now.
func (l *limiter) check(now time.Time) verdict {
	if l.lim == nil || l.lim.AllowN(now, 1) {
		return admit
	}
	if now.Sub(l.lastReject) > time.Second {
		l.overSince = now
	}
	l.lastReject = now
	if now.Sub(l.overSince) >= abuseAfter {
		return disconnect
	}
	if now.Sub(l.lastError) >= errorEvery {
		l.lastError = now
		return dropAndTell
	}
	return drop
}
