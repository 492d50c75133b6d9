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
	return webhook.Config{URL: c.WebhookURL, Secret: []byte(c.WebhookSecret), Events: c.WebhookEvents, Node: c.NodeID}
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
// uses).
func closeWebhooks(ctx context.Context, d *webhook.Dispatcher, log zerolog.Logger) {
	if d == nil {
		return
	}
	if err := d.Close(ctx); err != nil {
		log.Warn().Err(err).Msg("webhooks did not stop in time")
	}
}
