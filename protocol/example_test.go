package protocol_test

import (
	"errors"
	"fmt"

	"github.com/switchboard-chat/switchboard/protocol"
)

// A client's send frame is decoded and validated, then encoded once as a
// message template; the broker completes it with the seq it assigns.
func Example() {
	req, err := protocol.Decode([]byte(`{"type":"send","id":"s1","room":"lobby","data":{"text": "hi"}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(req.Type, req.Room, string(req.ID), string(req.Data))

	msg, err := protocol.NewMessage(req.Room, "ann", req.Data, 1700000000000)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", msg.Frame(42))
	// Output:
	// send lobby "s1" {"text": "hi"}
	// {"type":"message","room":"lobby","seq":42,"from":"ann","data":{"text":"hi"},"ts":1700000000000}
}

// A frame that fails validation still yields its id, so the error frame can
// echo it.
func ExampleDecode_error() {
	req, err := protocol.Decode([]byte(`{"type":"history","id":7,"room":"lobby","limit":500}`))
	var e *protocol.Error
	if errors.As(err, &e) {
		fmt.Printf("%s\n", protocol.EncodeError(req.ID, e))
	}
	// Output:
	// {"type":"error","id":7,"code":"bad_request","message":"limit must be 1-100"}
}
