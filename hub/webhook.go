package hub

import (
	"encoding/json"
	"time"
)

// The hub reports what happens on this node (a message accepted, a member
// joining, a session starting) as WebhookEvents through one hook,
// Config.OnWebhookEvent; package webhook delivers them to the app's
// backend. Every feature that produces an event calls Hub.Emit, on the one
// node where the change happened, so that a cluster reports it once.

// webhookTypes is the registry of event types, in registration order.
var webhookTypes []string

// registerWebhookType adds typ to the registry and returns it: declaring an
// event type is one line below.
func registerWebhookType(typ string) string {
	webhookTypes = append(webhookTypes, typ)
	return typ
}

// Webhook event types, by what their Data is. Adding one is one line here;
// docs/webhooks.md lists them with example bodies.
var (
	// WebhookMessageSent is a message the node's broker accepted (not an
	// idempotent repeat): Data is a WebhookMessage.
	WebhookMessageSent = registerWebhookType("message.sent")
	// WebhookMessageEdited and WebhookMessageDeleted are an edit or delete
	// accepted on this node: Data is a WebhookMessage whose Seq is the
	// change's own and Target the message changed (an edit's Data the new
	// data; a delete has none).
	WebhookMessageEdited  = registerWebhookType("message.edited")
	WebhookMessageDeleted = registerWebhookType("message.deleted")
	// WebhookMemberJoined and WebhookMemberLeft are a user becoming present
	// in a room on some node, or absent from it on every node: Data is a
	// WebhookMember. A departure no session's leave caused (a crashed
	// node's users) is emitted by the node that finds it: see
	// DepartureReporter.
	WebhookMemberJoined = registerWebhookType("member.joined")
	WebhookMemberLeft   = registerWebhookType("member.left")
	// WebhookUserConnected and WebhookUserDisconnected are a session
	// starting and ending on this node: Data is a WebhookUser.
	WebhookUserConnected    = registerWebhookType("user.connected")
	WebhookUserDisconnected = registerWebhookType("user.disconnected")
	// The moderation types are a mute, unmute, ban, unban, freeze or
	// unfreeze applied through this node (server API or operator): Data is
	// a WebhookModeration.
	WebhookModerationMuted    = registerWebhookType("moderation.muted")
	WebhookModerationUnmuted  = registerWebhookType("moderation.unmuted")
	WebhookModerationBanned   = registerWebhookType("moderation.banned")
	WebhookModerationUnbanned = registerWebhookType("moderation.unbanned")
	WebhookModerationFrozen   = registerWebhookType("moderation.frozen")
	WebhookModerationUnfrozen = registerWebhookType("moderation.unfrozen")
)

// WebhookTypes returns every webhook event type, in a fixed order.
func WebhookTypes() []string {
	return append([]string(nil), webhookTypes...)
}

// WebhookEvent is something that happened, for the app's backend. The hook
// receives it; the webhook package gives it an id and the node's name.
type WebhookEvent struct {
	// Type is one of WebhookTypes.
	Type string
	// Time is when it happened.
	Time time.Time
	// Data is the event's JSON-encodable payload. It must not change after
	// Emit: it is encoded later, on another goroutine.
	Data any
}

// WebhookMessage is the Data of message events.
type WebhookMessage struct {
	Room  string `json:"room"`
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
	From  string `json:"from"`
	// Target is the seq of the message an edit or delete changes; 0 (left
	// out) for message.sent.
	Target uint64          `json:"target,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// WebhookModeration is the Data of moderation events.
type WebhookModeration struct {
	Room string `json:"room"`
	// User is whom a mute, unmute, ban or unban is about; "" for a freeze.
	User string `json:"user,omitempty"`
	// Until is when a timed mute or ban ends, in unix milliseconds.
	Until int64 `json:"until,omitempty"`
	// Reason is a ban's.
	Reason string `json:"reason,omitempty"`
	// By is who acted: "system" (the server API) or the operator's user.
	By string `json:"by"`
}

// WebhookMember is the Data of member events.
type WebhookMember struct {
	Room string `json:"room"`
	User string `json:"user"`
}

// WebhookUser is the Data of user events: the user and the session's id,
// unique on its node (the event names the node).
type WebhookUser struct {
	User    string `json:"user"`
	Session string `json:"session"`
}

// memberEvents returns the function that emits typ (member.left or
// member.joined) for each of users in room: what a DepartureReporter or a
// ReturnReporter reports, changes no Remove or Add of this hub's told it.
func (h *Hub) memberEvents(typ string) func(room string, users []string) {
	return func(room string, users []string) {
		for _, user := range users {
			h.Emit(typ, WebhookMember{Room: room, User: user})
		}
	}
}

// Emit reports an event of type typ with data through Config.OnWebhookEvent,
// and does nothing when it is nil. It never blocks: the hook only queues.
// Call it once per change, on the node that made it.
func (h *Hub) Emit(typ string, data any) {
	if h.cfg.OnWebhookEvent == nil {
		return
	}
	h.cfg.OnWebhookEvent(WebhookEvent{Type: typ, Time: time.Now(), Data: data})
}
