package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker"
	"github.com/switchboard-chat/switchboard/hub/webhook"
)

// webhookConfig is the dispatcher's configuration from the flags.
func (c *config) webhookConfig() webhook.Config {
	flush := c.WebhookFlush
	if flush == 0 {
		flush = -1 // the flag's 0 is no flush; the Config's zero is its default
	}
	return webhook.Config{URL: c.WebhookURL, Secret: []byte(c.WebhookSecret), Events: c.WebhookEvents, Node: c.NodeID, FlushTimeout: flush}
}

// newWebhooks returns the node's webhook dispatcher, nil when webhooks are
// off: with Redis its backlog is the cluster's stream (each event sent by
// one node), else a queue in memory.
func newWebhooks(cfg config, broker hub.Broker, log zerolog.Logger) (*webhook.Dispatcher, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	var backlog webhook.Backlog = webhook.NewMemoryBacklog(0, 0)
	if rb, ok := broker.(*redisbroker.Broker); ok {
		backlog = rb.WebhookBacklog(redisbroker.WebhookConfig{})
	}
	wcfg := cfg.webhookConfig()
	wcfg.Logger = log
	return webhook.New(wcfg, backlog)
}

// closeWebhooks stops d, when not nil, after the sessions have closed (their
// last events queued) and before the broker (whose Redis connection it
// uses), within ctx: the rest of the shutdown's time. Without Redis, d
// first delivers what it holds, for up to --webhook-flush-timeout; with
// Redis, it adds what is queued to the stream and leaves it to the other
// nodes.
func closeWebhooks(ctx context.Context, d *webhook.Dispatcher, log zerolog.Logger) {
	if d == nil {
		return
	}
	if err := d.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("webhooks did not stop in time")
	}
}
