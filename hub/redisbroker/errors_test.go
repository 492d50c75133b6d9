package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

func TestWrap(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	tests := []struct {
		err                error
		unavailable, maybe bool
	}{
		{dial, true, false},
		{read, true, true},
		{io.EOF, true, true},
		{context.DeadlineExceeded, true, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true, true},
		{context.Canceled, false, false},
		{errors.New("ERR syntax error"), false, false},
	}
	for _, tt := range tests {
		err := wrapMaybe("publish", tt.err)
		if got := errors.Is(err, hub.ErrUnavailable); got != tt.unavailable {
			t.Errorf("%v: unavailable = %v, want %v", err, got, tt.unavailable)
		}
		if got := errors.Is(err, hub.ErrMaybeDelivered); got != tt.maybe {
			t.Errorf("%v: maybe delivered = %v, want %v", err, got, tt.maybe)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%v does not wrap %v", err, tt.err)
		}
		if errors.Is(wrap("read", tt.err), hub.ErrMaybeDelivered) {
			t.Errorf("a read error matches ErrMaybeDelivered")
		}
	}
}
