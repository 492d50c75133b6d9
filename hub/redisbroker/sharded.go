package redisbroker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// healthInterval is how long a sharded pub/sub connection may be silent
// before it is pinged; one silent for as long again is taken for broken.
const healthInterval = 3 * time.Second

// errNotSubscribed is returned by an unsubscribe of a channel no connection
// carries: there is nothing to send, and no confirmation will come.
var errNotSubscribed = errors.New("redisbroker: channel not subscribed on any connection")

// On a Redis Cluster a shard channel can only be subscribed on the node
// that owns its slot (or a replica of it), and one SSUBSCRIBE may only name
// channels of one slot. sharded holds one go-redis PubSub per master, which
// carries the channels of the slots that master owns, each SSUBSCRIBE naming
// one slot's channels.
//
// go-redis would, after reconnecting a PubSub, resubscribe all its channels
// in one SSUBSCRIBE, which a cluster refuses (CROSSSLOT) when they span
// slots; and it does not follow a slot that moved. So sharded reads each
// connection itself and, at the first error, closes it for good: its
// channels become pending, and the maintenance loop subscribes them again,
// every retryInterval, on whichever master owns their slots by then. The
// same happens to the channels of one slot when their master tells that
// the slot moved away (a SUNSUBSCRIBE it sends on its own, or a MOVED
// reply). A room resubscribed is resynced from its history once Redis
// confirms, as after any reconnection: nothing is lost silently.
//
// Lock order: Broker.subMu, then sharded.mu, then Broker.mu. Changes of
// owner happen with subMu held, so that the subscription state of the
// broker (its maps, pending) and of sharded agree.
type sharded struct {
	b  *Broker
	cc *redis.ClusterClient

	mu      sync.Mutex
	conns   map[string]*nodeConn // by master address
	owner   map[string]*nodeConn // the connection each channel is subscribed on
	ctx     context.Context      // Start's; nil before
	closed  bool
	readers sync.WaitGroup
}

// nodeConn is the pub/sub connection to one master.
type nodeConn struct {
	addr string
	ps   *redis.PubSub
	live atomic.Bool // it received something: its failure is worth a warning
}

func newSharded(b *Broker, cc *redis.ClusterClient) *sharded {
	return &sharded{
		b:     b,
		cc:    cc,
		conns: make(map[string]*nodeConn),
		owner: make(map[string]*nodeConn),
	}
}

// start starts reading the connections, those made before and after.
func (s *sharded) start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for _, nc := range s.conns {
		s.readLocked(nc)
	}
}

// run waits for ctx, then closes the connections, waits for their readers
// and, as the receive loop does on one Redis, releases the callers awaiting
// a confirmation and ends the shards.
func (s *sharded) run(ctx context.Context) {
	<-ctx.Done()
	s.close()
	s.readers.Wait()
	close(s.b.stopped)
	for _, sh := range s.b.shards {
		close(sh.queue)
	}
}

// close closes every connection; none is made afterwards.
func (s *sharded) close() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[string]*nodeConn{}
	s.mu.Unlock()
	for _, nc := range conns {
		nc.ps.Close()
	}
}

// conn returns the connection to the master of client, made if need be.
func (s *sharded) conn(client *redis.Client) (*nodeConn, error) {
	addr := client.Options().Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if nc := s.conns[addr]; nc != nil {
		return nc, nil
	}
	nc := &nodeConn{addr: addr, ps: client.Subscribe(context.Background())} // connects on first use
	s.conns[addr] = nc
	if s.ctx != nil {
		s.readLocked(nc)
	}
	return nc, nil
}

func (s *sharded) readLocked(nc *nodeConn) {
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		s.read(s.ctx, nc)
	}()
}

// subscribe sends one SSUBSCRIBE for channels, all of one slot, to the
// slot's master. subMu is held.
func (s *sharded) subscribe(ctx context.Context, channels []string) error {
	client, err := s.cc.MasterForKey(ctx, channels[0])
	if err != nil {
		return err
	}
	nc, err := s.conn(client)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, ch := range channels {
		s.owner[ch] = nc
	}
	s.mu.Unlock()
	if err := nc.ps.SSubscribe(ctx, channels...); err != nil {
		s.failLocked(nc, err)
		return err
	}
	return nil
}

// subscribeEach subscribes channels, slot by slot, and returns those whose
// SSUBSCRIBE was sent. subMu is held.
func (s *sharded) subscribeEach(ctx context.Context, channels []string) []string {
	bySlot := make(map[int][]string)
	for _, ch := range channels {
		slot := keySlot(ch)
		bySlot[slot] = append(bySlot[slot], ch)
	}
	var sent []string
	for _, group := range bySlot {
		if s.subscribe(ctx, group) == nil {
			sent = append(sent, group...)
		}
	}
	return sent
}

// unsubscribe sends SUNSUBSCRIBE for channel on its connection. subMu is
// held.
func (s *sharded) unsubscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	nc := s.owner[channel]
	delete(s.owner, channel)
	s.mu.Unlock()
	if nc == nil {
		return errNotSubscribed
	}
	if err := nc.ps.SUnsubscribe(ctx, channel); err != nil {
		s.failLocked(nc, err)
		return err
	}
	return nil
}

// read is a connection's reader: it routes what the connection receives,
// as the receive loop does on one Redis, pings it when silent, and ends
// when the connection is closed or fails (see fail).
func (s *sharded) read(ctx context.Context, nc *nodeConn) {
	pinged := false
	for {
		msg, err := nc.ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			var netErr net.Error
			switch {
			case ctx.Err() != nil || errors.Is(err, redis.ErrClosed):
				return
			case errors.As(err, &netErr) && netErr.Timeout() && !pinged:
				pinged = true
				if nc.ps.Ping(ctx) == nil {
					continue
				}
			case s.moved(nc, err):
				continue
			}
			s.fail(nc, err)
			return
		}
		pinged = false
		nc.live.Store(true)
		switch m := msg.(type) {
		case *redis.Message:
			s.b.route(ctx, m)
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" && s.movedAway(nc, m.Channel) {
				continue
			}
			if st := s.b.onSubscription(m); st != nil {
				s.b.handOver(ctx, s.b.shardOf(st.name), delivery{kind: resyncRoom, st: st})
			}
		}
	}
}

// fail closes a connection that failed and makes its channels pending.
func (s *sharded) fail(nc *nodeConn, err error) {
	s.b.subMu.Lock()
	defer s.b.subMu.Unlock()
	s.failLocked(nc, err)
}

// failLocked is fail with subMu held.
func (s *sharded) failLocked(nc *nodeConn, err error) {
	s.mu.Lock()
	if s.conns[nc.addr] != nc {
		s.mu.Unlock()
		return // failed or closed already
	}
	delete(s.conns, nc.addr)
	lost := s.dropLocked(func(ch string, o *nodeConn) bool { return o == nc })
	s.mu.Unlock()
	nc.ps.Close()
	s.pend(lost)
	ev := s.b.log.Debug()
	if nc.live.Load() {
		ev = s.b.log.Warn()
	}
	ev.Err(err).Str("master", nc.addr).Int("channels", len(lost)).
		Msg("sharded pub/sub connection lost: resubscribing its channels when their masters answer")
}

// moved handles a MOVED reply to an SSUBSCRIBE sent to a master that no
// longer owns the slot: the slot's channels of nc become pending.
func (s *sharded) moved(nc *nodeConn, err error) bool {
	f := strings.Fields(err.Error())
	if len(f) != 3 || f[0] != "MOVED" {
		return false
	}
	slot, perr := strconv.Atoi(f[1])
	if perr != nil {
		return false
	}
	s.b.subMu.Lock()
	defer s.b.subMu.Unlock()
	s.mu.Lock()
	lost := s.dropLocked(func(ch string, o *nodeConn) bool { return o == nc && keySlot(ch) == slot })
	s.mu.Unlock()
	s.pend(lost)
	return true
}

// movedAway handles a SUNSUBSCRIBE: one the broker did not ask for (the
// channel is still owned by nc) is the master telling that the channel's
// slot moved away. The channel becomes pending, to be subscribed on its
// new master, and movedAway reports true.
func (s *sharded) movedAway(nc *nodeConn, channel string) bool {
	s.b.subMu.Lock()
	defer s.b.subMu.Unlock()
	s.mu.Lock()
	lost := s.dropLocked(func(ch string, o *nodeConn) bool { return ch == channel && o == nc })
	s.mu.Unlock()
	if len(lost) == 0 {
		return false
	}
	s.b.log.Info().Str("channel", channel).Str("master", nc.addr).
		Msg("slot moved: resubscribing on its new master")
	s.pend(lost)
	return true
}

// dropLocked forgets the owner of the channels that match and returns them.
// s.mu is held.
func (s *sharded) dropLocked(match func(string, *nodeConn) bool) []string {
	var lost []string
	for ch, o := range s.owner {
		if match(ch, o) {
			delete(s.owner, ch)
			lost = append(lost, ch)
		}
	}
	return lost
}

// pend marks channels for the maintenance loop to subscribe again and has
// the cluster client reload the slot map meanwhile. subMu is held.
func (s *sharded) pend(channels []string) {
	if len(channels) == 0 {
		return
	}
	s.b.mu.Lock()
	for _, ch := range channels {
		s.b.pending[ch] = true
	}
	s.b.mu.Unlock()
	s.cc.ReloadState(context.Background())
}

// anyMasterAnswers pings every master and succeeds when one answers.
func anyMasterAnswers(ctx context.Context, cc *redis.ClusterClient) error {
	var ok atomic.Bool
	var mu sync.Mutex
	var firstErr error
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return nil
		}
		ok.Store(true)
		return nil
	})
	switch {
	case ok.Load():
		return nil
	case err != nil:
		return err
	case firstErr != nil:
		return firstErr
	}
	return errors.New("no master answers")
}
