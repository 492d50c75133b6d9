// Package redistest starts a real redis-server for tests: on a free
// 127.0.0.1 port, without persistence, in its own temporary directory, killed
// when the test ends. It can stop and start the server again on the same port
// to test how clients survive a Redis restart (which, without persistence,
// loses every key).
//
// It owns nothing else: it does not talk to Redis beyond a readiness PING and
// knows nothing of Switchboard's keys.
package redistest
