// Package protocol owns Switchboard's wire format, protocol v1: the JSON frames
// clients send and receive over a WebSocket, their validation, their encoding,
// the stable error codes and the close codes.
//
// It does no I/O and knows nothing of rooms or connections: Decode turns one
// client frame into a validated Request or an *Error that can be sent back as
// an error frame; the Encode functions build server frames. docs/protocol.md is
// the user-facing description of the same rules.
package protocol
