package redisbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// newClient returns the client for cfg: a redis.Client on one Redis, a
// redis.ClusterClient on a cluster. Both fail fast while Redis is down (the
// callers retry) and never retry a command themselves: one retried after a
// lost reply could run twice, and a publish without idempotency key would be
// published twice. The caller gets ErrMaybeDelivered instead and retries
// with its key.
func newClient(cfg Config) (redis.UniversalClient, error) {
	if cfg.Cluster {
		opt, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("cluster url: %w", err)
		}
		opt.ContextTimeoutEnabled = true
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = cfg.OpTimeout, cfg.OpTimeout, cfg.OpTimeout
		opt.MaxRetries = -1
		opt.DialerRetries = 1
		opt.ClientName = "switchboard:" + cfg.NodeID
		opt.DisableIdentity = true
		// The cluster client follows MOVED and ASK (the command did not
		// run) but would also resend a command whose reply was lost: each
		// node's client marks such failures as not to be retried.
		opt.NewClient = func(o *redis.Options) *redis.Client {
			c := redis.NewClient(o)
			c.AddHook(noRetryHook{})
			return c
		}
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = cfg.OpTimeout, cfg.OpTimeout, cfg.OpTimeout
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.ClientName = "switchboard:" + cfg.NodeID
	opt.DisableIdentity = true
	return redis.NewClient(opt), nil
}

// noRetryHook hides a cluster node's network errors and timeouts from the
// cluster client's retry logic (see noRetryError).
type noRetryHook struct{}

func (noRetryHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (noRetryHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		var redisErr redis.Error
		if err != nil && !errors.As(err, &redisErr) {
			err = &noRetryError{err: err}
			cmd.SetErr(err)
		}
		return err
	}
}

func (noRetryHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next // pipelines run idempotent presence and registry commands
}

// noRetryError is a failure the cluster client must not retry. It has no
// Unwrap, so that go-redis does not recognize it; wrapErr unwraps it.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }

// unwrapNoRetry returns the error a noRetryError holds, or err.
func unwrapNoRetry(err error) error {
	var nr *noRetryError
	if errors.As(err, &nr) {
		return nr.err
	}
	return err
}
