package redisbroker

import (
	"fmt"
	"strconv"

	"github.com/switchboard-chat/switchboard/hub"
)

// targetArgs returns publish.lua's arguments for an edit's or delete's
// target: none for a plain message.
func targetArgs(t hub.Target) []any {
	if t.Seq == 0 {
		return nil
	}
	del := "0"
	if t.Delete {
		del = "1"
	}
	return []any{strconv.FormatUint(t.Seq, 10), t.Author, del}
}

// refused returns the error of publish.lua's refusal code, with until (of
// a mute).
func refused(code, until any) error {
	switch code {
	case "frozen":
		return fmt.Errorf("publish: %w", hub.ErrFrozen)
	case "muted", "banned":
		u, _ := until.(int64)
		err := hub.ErrMuted
		if code == "banned" {
			err = hub.ErrBanned
		}
		return fmt.Errorf("publish: %w", &hub.RestrictedError{Err: err, Until: u})
	case "not_found":
		return fmt.Errorf("publish: %w", hub.ErrNotFound)
	case "forbidden":
		return fmt.Errorf("publish: %w", hub.ErrNotAuthor)
	}
	return fmt.Errorf("publish: %w", errEnvelope)
}
