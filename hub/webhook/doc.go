// Package webhook delivers the hub's webhook events (hub.WebhookEvent) to
// the app's backend: each one as a signed JSON POST (see Sign), at least
// once, retried with exponential backoff and jitter, by exactly one node of
// a cluster.
//
// A Dispatcher takes events from the hub's hook without ever blocking
// (Enqueue), stores them in a Backlog and delivers what the Backlog hands
// it. The Backlog decides who delivers what: MemoryBacklog, a bounded queue
// in the process, for a single node; redisbroker's, a Redis Stream with a
// consumer group shared by every node, for a cluster. Both are bounded: an
// event that does not fit is dropped and counted, never waited for. On
// Close, a shared Backlog keeps what is undelivered for the other nodes;
// the entries of a MemoryBacklog, which die with the process, are
// delivered first for up to Config.FlushTimeout, and the rest counted as
// dropped.
//
// The package owns delivery, retries and signing. It does not decide which
// events exist or where they come from (package hub does), nor how the
// command configures or exports it.
package webhook
