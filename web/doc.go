// Package web owns the browser side of Switchboard: the dependency-free
// JavaScript client library and the demo chat page, embedded in the binary
// and served by Handler.
package web
