// Package redistest starts a real redis-server for tests, or a Redis
// Cluster of several (StartCluster): on free 127.0.0.1 ports, without
// persistence, each in its own temporary directory, killed when the test
// ends. It can stop and start a server again on the same port to test how
// clients survive a Redis restart (which, without persistence, loses every
// key; a cluster node keeps its slots, from its nodes.conf).
//
// It owns nothing else: it does not talk to Redis beyond readiness checks
// and knows nothing of Switchboard's keys.
package redistest
