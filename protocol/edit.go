package protocol

import (
	"encoding/json"
	"strconv"
)

// Edits and deletes. A member edits or deletes a message it sent with an
// edit or delete frame naming the message's seq; the server appends the
// change to the room's stream as an entry of its own, with its own seq, and
// delivers it as a message_edited or message_deleted frame naming the
// target. History, paging and recovery carry these entries like messages.
const (
	TypeEdit           = "edit"
	TypeDelete         = "delete"
	TypeMessageEdited  = "message_edited"
	TypeMessageDeleted = "message_deleted"
)

// NewEdited returns the template of a message_edited frame: user from
// replaced the data of the room's message target with data at ts. data must
// be valid JSON; it is compacted as a message's is.
func NewEdited(room, from string, target uint64, data json.RawMessage, ts int64) (MessageTemplate, error) {
	suffix, err := dataSuffix(changeSuffix(target, from), data, ts)
	if err != nil {
		return MessageTemplate{}, err
	}
	return MessageTemplate{Prefix: templatePrefix(TypeMessageEdited, room), Suffix: suffix}, nil
}

// NewDeleted returns the template of a message_deleted frame: user from
// deleted the room's message target at ts.
func NewDeleted(room, from string, target uint64, ts int64) MessageTemplate {
	s := changeSuffix(target, from)
	s = append(s, `,"ts":`...)
	s = strconv.AppendInt(s, ts, 10)
	s = append(s, '}')
	return MessageTemplate{Prefix: templatePrefix(TypeMessageDeleted, room), Suffix: s}
}

// changeSuffix is ,"target":<target>,"from":"<from>"
func changeSuffix(target uint64, from string) []byte {
	b := append([]byte(`,"target":`), strconv.FormatUint(target, 10)...)
	b = append(b, `,"from":`...)
	return appendString(b, from)
}
