package hub

// Session is what the hub needs of one client connection. Package clients
// implements it.
type Session interface {
	// ID identifies the session uniquely on this node.
	ID() string
	// User is the session's user name; several sessions may share one.
	User() string
	// Enqueue queues an encoded frame for the client without blocking. A
	// session whose queue is full closes itself; Enqueue then does nothing.
	Enqueue(frame []byte)
	// Close disconnects the session with a WebSocket close code and reason.
	// It does not block and may be called more than once.
	Close(code int, reason string)
}
