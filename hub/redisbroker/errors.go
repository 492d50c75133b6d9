package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-chat/switchboard/hub"
)

// unavailableError is a failure to reach Redis. It matches hub.ErrUnavailable
// with errors.Is, and hub.ErrMaybeDelivered as well when the failed command
// changes state and may have run before the failure (a timeout waiting for
// its reply, a connection lost after sending it).
type unavailableError struct {
	err   error
	maybe bool
}

func (e *unavailableError) Error() string {
	if e.maybe {
		return "redis unavailable, the command may have run: " + e.err.Error()
	}
	return "redis unavailable: " + e.err.Error()
}

func (e *unavailableError) Unwrap() error { return e.err }

// Is makes the error match the hub's sentinels.
func (e *unavailableError) Is(target error) bool {
	return target == hub.ErrUnavailable || (e.maybe && target == hub.ErrMaybeDelivered)
}

// wrap returns err wrapped with the step's name, as an unavailableError when
// Redis could not be reached.
func wrap(step string, err error) error {
	return wrapErr(step, err, false)
}

// wrapMaybe is wrap for a step whose effect matters to the caller (a
// publish, a direct message): if it may have taken effect before failing,
// the error also matches hub.ErrMaybeDelivered.
func wrapMaybe(step string, err error) error {
	return wrapErr(step, err, true)
}

func wrapErr(step string, err error, maybe bool) error {
	if err == nil {
		return nil
	}
	err = unwrapNoRetry(err)
	if unreachable(err) {
		err = &unavailableError{err: err, maybe: maybe && mayHaveRun(err)}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// busyReplies are the prefixes of Redis error replies that mean "not now",
// OOM included: Redis reached maxmemory under maxmemory-policy noeviction
// (a script's first write is refused, so nothing was written).
var busyReplies = []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM"}

// unreachable reports whether err means Redis could not be reached or could
// not serve, as opposed to a bad command or a cancelled caller.
func unreachable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &netErr):
		return true
	}
	for _, p := range busyReplies {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// mayHaveRun reports whether the command that failed with err may have reached
// Redis: it may not only when no connection was had or Redis answered with
// an error.
func mayHaveRun(err error) bool {
	var opErr *net.OpError
	var redisErr redis.Error
	switch {
	case errors.As(err, &opErr) && opErr.Op == "dial",
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed),
		errors.As(err, &redisErr):
		return false
	}
	return true
}

// errorCounter is a go-redis hook that counts the commands that failed (see
// Stats.Errors): one atomic add per failed command, nothing per success.
type errorCounter struct{ n *atomic.Uint64 }

func (c errorCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c errorCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if failed(err) && !handshake(cmd) {
			c.n.Add(1)
		}
		return err
	}
}

func (c errorCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil {
			for _, cmd := range cmds {
				if failed(cmd.Err()) && !handshake(cmd) {
					c.n.Add(1)
				}
			}
		}
		return err
	}
}

// handshake reports whether cmd is go-redis's optional handshake on a new
// connection, CLIENT MAINT_NOTIFICATIONS, which a Redis before 8 refuses
// and go-redis then does without.
func handshake(cmd redis.Cmder) bool {
	args := cmd.Args()
	return len(args) > 1 && cmd.Name() == "client" && args[1] == "maint_notifications"
}

// failed reports whether err is a command's failure: not a missing key, a
// script to load first, or a caller that gave up.
func failed(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !errors.Is(err, context.Canceled) &&
		!redis.HasErrorPrefix(err, "NOSCRIPT")
}
