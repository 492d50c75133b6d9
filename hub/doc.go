// Package hub owns rooms, membership and fan-out: which local sessions are in
// which room, delivering each message to them in seq order, joins with
// recovery, typing, direct messages, presence, edits and deletes, read
// receipts (coalesced per user and room, stored through the Broker's
// optional Reads), and moderation (mutes, bans and freezes, whose state the
// Broker keeps). It reaches other nodes and history only through the Broker
// and Presence interfaces it declares;
// package memorybroker has the single-node implementations, and package
// redisbroker the one shared by a cluster.
//
// The hub never touches a network connection: it talks to clients through the
// Session interface, whose Enqueue never blocks, so a slow client cannot slow
// the hub or other clients.
package hub
