// Package memorybroker is the single-node implementation of the hub's
// seams: a Broker that keeps each room's history (and each user's read
// positions: hub.Reads) in memory and delivers to the hub from a few
// delivery goroutines (a publisher never waits for a room's fan-out), a
// Presence that is a set of users per room, and
// the idempotency cache both use. It owns nothing that crosses nodes; a
// cluster uses package redisbroker instead, and both pass the conformance
// suites of package hubtest.
package memorybroker
