package hub

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Errors the hub returns for a client's request; Code maps them to protocol
// error codes.
var (
	ErrNotMember    = errors.New("hub: not a member of the room")
	ErrOffline      = errors.New("hub: user has no session")
	ErrTooManyRooms = errors.New("hub: too many rooms")
	ErrClosing      = errors.New("hub: shutting down")
)

// Config configures a Hub. Its zero value works.
type Config struct {
	// OpTimeout bounds every Broker and Presence call the hub makes on a
	// client's behalf. Default 5s.
	OpTimeout time.Duration
	// JoinBuffer caps the live frames held for a session while its join is
	// answered; a session that exceeds it is closed as too slow. Default 4096.
	JoinBuffer int
	// MaxRoomsPerSession caps the rooms one session may be in; 0 means 100.
	MaxRoomsPerSession int
	// MaxReplayBytes caps the bytes of missed messages a recovering join
	// replays at once (and reads: the broker stops reading beyond it); a
	// larger gap answers recovered:false so the client pages history
	// instead of overflowing its queue. 0 means no cap.
	MaxReplayBytes int
	// Logger receives the hub's logs. Default: none.
	Logger zerolog.Logger
	// OnWebhookEvent, when set, receives the node's webhook events (see
	// Emit). It must not block. Default: none.
	OnWebhookEvent func(WebhookEvent)
}

// Hub routes frames between local sessions and the Broker. Its methods are
// safe for concurrent use; the methods that take a Session must be called
// by one goroutine per session (its read loop), between Connect and
// Disconnect.
type Hub struct {
	broker   Broker
	presence Presence
	cfg      Config
	log      zerolog.Logger

	mu       sync.Mutex
	rooms    map[string]*room
	users    map[string]*userEntry
	sessions map[Session]map[string]struct{} // session → rooms it joined
	closing  bool
	drained  chan struct{} // closed once closing and sessions is empty
	progress drainProgress // of the latest Close or Drain

	count counters   // for metrics: see Counters
	reads *readRelay // coalesces and stores read reports: see Read
	// bg counts the hub's own goroutines (a ban's exits, moderation.go),
	// which Drain waits for.
	bg sync.WaitGroup
}

// userEntry is a user's local sessions and its Broker subscription.
type userEntry struct {
	refs     int                  // sessions plus in-flight operations; guarded by Hub.mu
	sessions map[Session]struct{} // guarded by Hub.mu

	opMu       sync.Mutex // serializes SubscribeUser and UnsubscribeUser
	subscribed bool       // guarded by opMu
}

// New returns a Hub routing through broker and presence. Call Start before
// connecting sessions. When broker also implements Reads, the hub keeps
// read positions and answers joins with unread counts; when presence also
// implements DepartureReporter, the hub emits member.left for the
// departures it reports.
func New(broker Broker, presence Presence, cfg Config) *Hub {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.JoinBuffer <= 0 {
		cfg.JoinBuffer = 4096
	}
	if cfg.MaxRoomsPerSession <= 0 {
		cfg.MaxRoomsPerSession = 100
	}
	h := &Hub{
		broker:   broker,
		presence: presence,
		cfg:      cfg,
		log:      cfg.Logger,
		rooms:    make(map[string]*room),
		users:    make(map[string]*userEntry),
		sessions: make(map[Session]map[string]struct{}),
		drained:  make(chan struct{}),
	}
	h.reads = newReadRelay(h, broker)
	if d, ok := presence.(DepartureReporter); ok {
		d.ReportDepartures(h.memberEvents(WebhookMemberLeft))
	}
	if r, ok := presence.(ReturnReporter); ok {
		r.ReportReturns(h.memberEvents(WebhookMemberJoined))
	}
	return h
}

// Start makes the broker deliver to the hub.
func (h *Hub) Start(ctx context.Context) error {
	return h.broker.Start(ctx, delivery{h})
}

// Ready reports whether the hub can take traffic: not closing and the broker
// reachable.
func (h *Hub) Ready(ctx context.Context) error {
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	if closing {
		return ErrClosing
	}
	return h.broker.Ready(ctx)
}

// Connect registers a session and subscribes to its user's events.
func (h *Hub) Connect(ctx context.Context, s Session) error {
	if err := h.connect(ctx, s); err != nil {
		return err
	}
	h.Emit(WebhookUserConnected, WebhookUser{User: s.User(), Session: s.ID()})
	return nil
}

func (h *Hub) connect(ctx context.Context, s Session) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return ErrClosing
	}
	h.sessions[s] = make(map[string]struct{})
	u := h.users[s.User()]
	if u == nil {
		u = &userEntry{sessions: make(map[Session]struct{})}
		h.users[s.User()] = u
	}
	u.refs++
	u.sessions[s] = struct{}{}
	h.mu.Unlock()

	ctx, cancel := h.opContext(ctx)
	defer cancel()
	u.opMu.Lock()
	defer u.opMu.Unlock()
	if u.subscribed {
		return nil
	}
	if err := h.broker.SubscribeUser(ctx, s.User()); err != nil {
		h.forget(s, u)
		return err
	}
	u.subscribed = true
	return nil
}

// Disconnect removes a session from its rooms (announcing member_left where
// it was the user's last) and from the hub. Every Broker and Presence call
// it makes has a deadline of its own, since the session's context is
// usually done by then and one slow call must not fail the next.
func (h *Hub) Disconnect(s Session) {
	h.mu.Lock()
	joined := h.sessions[s]
	rooms := make([]*room, 0, len(joined))
	for name := range joined {
		rooms = append(rooms, h.rooms[name])
	}
	h.mu.Unlock()
	for _, r := range rooms {
		h.exit(s, r)
	}

	h.mu.Lock()
	u := h.users[s.User()]
	delete(u.sessions, s)
	h.mu.Unlock()
	u.opMu.Lock()
	h.mu.Lock()
	empty := len(u.sessions) == 0
	h.mu.Unlock()
	if empty && u.subscribed {
		ctx, cancel := h.opContext(context.Background())
		if err := h.broker.UnsubscribeUser(ctx, s.User()); err != nil {
			h.log.Warn().Err(err).Str("user", s.User()).Msg("unsubscribe user")
		}
		cancel()
		u.subscribed = false
	}
	u.opMu.Unlock()
	// Emitted before forget, which may end a Drain: the events of the
	// sessions a Drain closes are emitted before it returns, so that a
	// shutdown hands them to the webhooks before stopping them.
	h.Emit(WebhookUserDisconnected, WebhookUser{User: s.User(), Session: s.ID()})
	h.forget(s, u)
}

// Rooms returns the names of the rooms s is in, in no particular order.
func (h *Hub) Rooms(s Session) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := make([]string, 0, len(h.sessions[s]))
	for name := range h.sessions[s] {
		rooms = append(rooms, name)
	}
	return rooms
}

// forget drops a session and its hold on its user entry.
func (h *Hub) forget(s Session, u *userEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(u.sessions, s)
	if u.refs--; u.refs == 0 {
		delete(h.users, s.User())
	}
	delete(h.sessions, s)
	if h.closing && len(h.sessions) == 0 {
		h.closeDrainedLocked()
	}
}

func (h *Hub) closeDrainedLocked() {
	select {
	case <-h.drained:
	default:
		close(h.drained)
	}
}

// Close refuses new sessions, closes every session at once with code and
// reason, and waits until all of them have disconnected or ctx is done. It
// is Drain without pacing.
func (h *Hub) Close(ctx context.Context, code int, reason string) error {
	return h.Drain(ctx, code, reason, Pace{})
}

// Pace spreads the closes of Hub.Drain over time. Its zero value closes
// every session at once.
type Pace struct {
	// Rate is the most sessions closed per second, in batches every 50ms
	// (drainTick). 0 means no limit: every session at once.
	Rate int
	// Within, when not 0, raises Rate as far as needed for the last batch
	// to go within this time of the start, however many sessions there
	// are. Default: Rate is never raised.
	Within time.Duration
}

// drainTick is how often Drain closes a batch of sessions.
const drainTick = 50 * time.Millisecond

// rate returns the sessions per second at which n sessions are closed,
// 0 for all at once.
func (p Pace) rate(n int) float64 {
	if p.Rate <= 0 {
		return 0
	}
	rate := float64(p.Rate)
	if p.Within > 0 {
		rate = max(rate, float64(n)/p.Within.Seconds())
	}
	return rate
}

// Drain refuses new sessions, closes every session with code and reason,
// paced by pace, and waits until all of them have disconnected or ctx is
// done; then it stores the read reports still pending. When ctx is done
// before the last batch, the remaining sessions are closed at once: none is
// left without its close code. Drain logs a line when it starts, one a
// second while it paces, and one at the end.
//
// When Drain returns nil, every webhook event of the disconnects
// (member.left, user.disconnected) has been emitted: a shutdown can stop
// the webhooks after it without losing them.
//
// Spreading the closes of a node that restarts spreads the reconnects its
// clients make to the other nodes, and their recovery reads.
func (h *Hub) Drain(ctx context.Context, code int, reason string, pace Pace) error {
	start := time.Now()
	h.mu.Lock()
	h.closing = true
	sessions := make([]Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	if len(h.sessions) == 0 {
		h.closeDrainedLocked()
	}
	h.mu.Unlock()
	h.progress.start(len(sessions))
	rate := pace.rate(len(sessions))
	h.log.Info().Int("sessions", len(sessions)).Float64("rate", rate).Int("code", code).Msg("closing sessions")

	h.closePaced(ctx, sessions, code, reason, rate)
	var err error
	select {
	case <-h.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}

	if err == nil {
		h.bg.Wait() // no member is left to start more
	}
	h.reads.close()
	closed, total := h.progress.get()
	h.mu.Lock()
	left := len(h.sessions)
	h.mu.Unlock()
	h.log.Info().Int("closed", closed).Int("sessions", total).Int("left", left).Dur("took_ms", time.Since(start)).Msg("sessions closed")
	return err
}

// closePaced closes sessions with code and reason, rate a second (all at
// once when rate is 0), and the rest at once when ctx is done. How many
// are closed by now follows the clock, so a late tick catches up.
func (h *Hub) closePaced(ctx context.Context, sessions []Session, code int, reason string, rate float64) {
	start, logged := time.Now(), time.Now()
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	closed := 0
	for {
		due := len(sessions)
		if rate > 0 && ctx.Err() == nil {
			elapsed := time.Since(start) + drainTick // the first batch goes at once
			due = min(due, int(math.Ceil(rate*elapsed.Seconds())))
		}
		for _, s := range sessions[closed:due] {
			s.Close(code, reason)
		}
		h.progress.add(due - closed)
		if closed = due; closed == len(sessions) {
			return
		}
		if time.Since(logged) >= time.Second {
			logged = time.Now()
			h.log.Info().Int("closed", closed).Int("sessions", len(sessions)).Msg("sessions closing")
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// DrainProgress returns how many sessions the latest Close or Drain has
// closed so far, and how many there were when it started; (0, 0) before
// the first. It is safe to call at any time, for metrics.
func (h *Hub) DrainProgress() (closed, total int) {
	return h.progress.get()
}

// drainProgress counts a Drain's closes, for DrainProgress.
type drainProgress struct {
	mu            sync.Mutex
	closed, total int
}

func (p *drainProgress) start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed, p.total = 0, total
}

func (p *drainProgress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed += n
}

func (p *drainProgress) get() (closed, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed, p.total
}

// Stats is a snapshot of this node's hub.
type Stats struct {
	Sessions  int    `json:"connections"`
	Users     int    `json:"users"`
	Rooms     int    `json:"rooms"`
	Published uint64 `json:"messages"`
}

// Stats returns a snapshot of this node's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{
		Sessions:  len(h.sessions),
		Users:     len(h.users),
		Rooms:     len(h.rooms),
		Published: h.count.published.Load(),
	}
}

// Describe returns the protocol error, code and human message, for an error
// returned by the hub or its brokers: the one mapping both the WebSocket
// protocol and the server API use. An unexpected error is CodeInternal with
// a message that says no more.
func Describe(err error) *protocol.Error {
	var perr *protocol.Error
	var restricted *RestrictedError
	switch {
	case errors.As(err, &perr):
		return perr
	case errors.Is(err, ErrNotMember):
		return protocol.Errorf(protocol.CodeNotMember, "join the room first")
	case errors.Is(err, ErrOffline):
		return protocol.Errorf(protocol.CodeOffline, "that user is not connected")
	case errors.Is(err, ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, "no such message in the room's history (or it was deleted)")
	case errors.Is(err, ErrNotAuthor):
		return protocol.Errorf(protocol.CodeForbidden, "only the sender may edit or delete this message")
	case errors.As(err, &restricted):
		return restrictedError(restricted)
	case errors.Is(err, ErrFrozen):
		return protocol.Errorf(protocol.CodeFrozen, "the room is frozen: only its operators write to it")
	case errors.Is(err, ErrNotOperator):
		return protocol.Errorf(protocol.CodeForbidden, "only an operator of the room may moderate it")
	case errors.Is(err, ErrModFull):
		return protocol.Errorf(protocol.CodeTooMany, "the room has too many mutes and bans")
	case errors.Is(err, ErrTooManyRooms):
		return protocol.Errorf(protocol.CodeTooMany, "too many rooms joined on this connection")
	case errors.Is(err, ErrMaybeDelivered):
		return protocol.Errorf(protocol.CodeUnavailable, "the server timed out; the message may have been delivered: resend with the same id to be sure")
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return protocol.Errorf(protocol.CodeUnavailable, "messaging backend unavailable: try again")
	case errors.Is(err, ErrClosing):
		return protocol.Errorf(protocol.CodeUnavailable, "server is shutting down")
	default:
		return protocol.Errorf(protocol.CodeInternal, "internal error")
	}
}

// idempotencyKey scopes a client's id to its user and to the request's
// target ("send:room", "dm:user"): an id makes a retry of the same request
// safe, and must not swallow a different request that reuses it.
func idempotencyKey(user, target string, id json.RawMessage) string {
	if id == nil {
		return ""
	}
	return user + "\x00" + target + "\x00" + string(id)
}
