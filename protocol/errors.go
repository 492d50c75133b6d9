package protocol

// Error codes carried by error frames and HTTP error bodies. They are stable:
// clients may switch on them. docs/protocol.md describes each.
const (
	CodeBadJSON      = "bad_json"     // the frame is not a JSON object
	CodeBadRequest   = "bad_request"  // a field is missing or invalid
	CodeUnknownType  = "unknown_type" // the frame's type is not one the server knows
	CodeNotMember    = "not_member"   // the room was not joined by this connection
	CodeRateLimited  = "rate_limited" // the connection sent frames faster than allowed
	CodeOffline      = "offline"      // the DM recipient has no session anywhere
	CodeUnavailable  = "unavailable"  // the broker could not be reached; retry with the same id
	CodeForbidden    = "forbidden"    // the user may not do this (for example join that room)
	CodeUnauthorized = "unauthorized" // missing, invalid or expired credentials
	CodeTooMany      = "too_many"     // a configured limit (rooms per connection, connections) is reached
	CodeNotFound     = "not_found"    // no such message in the room's retained history (or it was deleted)
	CodeMuted        = "muted"        // the user is muted in the room: it may read but not write (until, when timed)
	CodeBanned       = "banned"       // the user is banned from the room (until, when timed)
	CodeFrozen       = "frozen"       // the room is frozen: only operators and the server API write to it
	CodeInternal     = "internal"     // a server bug; the message says no more
)

// Error is a protocol-level failure reported to the client as an error frame.
// It is also the error type Decode returns.
type Error struct {
	Code    string
	Message string
	// Until, for muted and banned, is when the restriction ends (unix
	// milliseconds); 0 when it lasts until lifted, and for other codes.
	Until int64
}

// Errorf returns an *Error with the given code and message.
func Errorf(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// WebSocket close codes the server uses. docs/protocol.md lists them.
const (
	CloseNormal        = 1000 // the client or server closed normally
	CloseGoingAway     = 1001 // the server is shutting down
	CloseUnsupported   = 1003 // a binary frame was sent
	CloseInvalidUTF8   = 1007 // a text frame was not valid UTF-8
	ClosePolicy        = 1008 // sustained abuse of the rate limit
	CloseTooBig        = 1009 // a frame was larger than the configured limit
	CloseRestart       = 1012 // the node is draining for a restart; reconnect at once
	CloseTryAgainLater = 1013 // the client read too slowly and its queue overflowed
	CloseTokenExpired  = 4001 // the auth token expired and was not refreshed
	CloseKicked        = 4003 // the server API disconnected this user
)
