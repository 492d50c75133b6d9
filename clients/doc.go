// Package clients owns client connections: it accepts WebSocket upgrades,
// runs one Session per connection (a read loop, a writer started on demand
// that coalesces queued frames, a bounded outbound queue, write deadlines
// and rate limits on frames and bytes; one keepalive per Server pings them
// all) and turns protocol frames into hub calls. It is the only package
// that imports the WebSocket library. It does not decide who may connect
// beyond validating the request: authentication is a function the caller
// supplies.
package clients
