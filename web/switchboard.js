// Switchboard client for browsers and node: protocol v1 over one WebSocket,
// with automatic reconnect, room recovery and exactly-once resends. No
// dependencies; served as an ES module as it is.
//
//   import { connect } from '/switchboard.js';
//   const sb = connect({ url: 'ws://localhost:8080/ws', name: 'alice' });
//   sb.on('message', (m, meta) => console.log(m.from, m.data, meta.source));
//   await sb.join('lobby');
//   await sb.send('lobby', { text: 'hi' });

import { Connection } from './lib/connection.js';
import { SwitchboardError } from './lib/errors.js';
import { idGenerator, parseFrames } from './lib/frames.js';
import { Outbox, RESEND_WINDOW_MS } from './lib/outbox.js';
import { Reads, READ_INTERVAL_MS } from './lib/reads.js';
import { Rooms } from './lib/rooms.js';

export { backoffDelay, PROBE_AFTER, probeDue, reconnectPlan, TokenBucket } from './lib/backoff.js';
export { Connection } from './lib/connection.js';
export { SwitchboardError } from './lib/errors.js';
export { idGenerator, parseFrames, splitFrames } from './lib/frames.js';
export { Outbox, RESEND_WINDOW_MS } from './lib/outbox.js';
export { MAX_PRESENCE_PAGE, MEMBER_EVENTS_MAX, MemberList } from './lib/members.js';
export { READ_INTERVAL_MS, Reads } from './lib/reads.js';
export { MAX_HISTORY } from './lib/rooms.js';
export { RoomStream } from './lib/stream.js';

const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;

/**
 * Client options; all but url and one of name/token are optional.
 * @typedef {object} Options
 * @property {string} url             WebSocket endpoint, e.g. "wss://host/ws"
 * @property {string} [name]          anonymous user name (?name=)
 * @property {string} [token]         JWT (?token=); wins over name
 * @property {Function} [WebSocket]   constructor; default globalThis.WebSocket (pass `ws` in node)
 * @property {number} [requestTimeoutMs=10000]  how long a request waits for its answer while connected
 * @property {number} [connectTimeoutMs=10000]  handshake plus welcome
 * @property {{baseMs?: number, capMs?: number}} [backoff]  reconnect window: 500 ms doubling, cap 30 s
 * @property {number} [stableMs=10000]  a connection up this long resets the backoff
 * @property {number} [heartbeatMs=25000]  ping after this much silence, reconnect if unanswered; 0 disables
 * @property {{perSecond?: number, burst?: number}} [rate]  outbound pacing: 15/s, burst 30
 * @property {number} [maxFrameBytes=65536]  larger sends fail with too_big rather than get the connection closed
 * @property {number} [typingIntervalMs=2000]  typing frames per room at most this often
 * @property {number} [resendWindowMs]  see Outbox: 4 minutes
 * @property {number} [readIntervalMs=250]  read reports per room at most this often
 * @property {number} [probeAfter=3]  ask over HTTP why the socket closed before it opened only
 *           after this many such closes in a row (then after 2×, 4× … as many): see probeDue
 */
const DEFAULTS = {
  requestTimeoutMs: 10000,
  connectTimeoutMs: 10000,
  backoff: {},
  stableMs: 10000,
  heartbeatMs: 25000,
  rate: {},
  maxFrameBytes: 65536,
  typingIntervalMs: 2000,
  resendWindowMs: RESEND_WINDOW_MS,
  readIntervalMs: READ_INTERVAL_MS,
  probeAfter: 3,
};

/**
 * connect returns a Client and starts connecting in a microtask, so that
 * listeners added right after the call see the first "connecting" status.
 * It never throws for network reasons: watch the "status" event.
 * @param {Options} options
 */
export function connect(options) {
  const c = new Client(options);
  queueMicrotask(() => c.start());
  return c;
}

/**
 * Client is one user's connection. Events (subscribe with on):
 * - status  {state: "connecting"|"connected"|"reconnecting"|"offline", node?, inMs?, at?, code?, reason?}
 * - message (frame, {source: "live"|"recovery"|"history", epoch, id?}): every
 *   room message once, in seq order; id is set on the echo of this client's own send
 * - message_edited, message_deleted (frame, {source, epoch}): a change of the
 *   message frame.target (new data in frame.data; frame.from made it), in the
 *   same seq order as messages and recovered like them: apply it to the
 *   message shown, if any
 * - dm      (frame, {id?}); id as for message
 * - typing  ({room, user})
 * - member_joined, member_left  ({room, user, count}); none in rooms of more
 *   than MEMBER_EVENTS_MAX members
 * - members ({room, members, count, complete}) whenever a room's member list
 *   or count changes: members are the users known, sorted; count is the
 *   room's member count; complete says members is the whole room (in a
 *   larger room the client pages it in by itself; in a room of more than
 *   MEMBER_EVENTS_MAX members it is the pages read so far: moreMembers())
 * - joined  ({room, members, count, seq, epoch, readSeq, unread, unreadCapped,
 *   recovered?}) after every join and rejoin; members is the first page of up
 *   to 100; readSeq is this user's read position the server keeps, unread the
 *   messages of others after it up to seq (unreadCapped: history did not reach
 *   back to readSeq, so there may be more)
 * - read    ({room, user, seq}) another member read the room up to seq (none
 *   in rooms of more than MEMBER_EVENTS_MAX members); readers(room) keeps them
 * - unread  ({room, readSeq, unread, capped}) this user's read position or
 *   unread count in a room changed (see unread())
 * - recovered ({room, count}) a rejoin replayed the count messages missed
 * - resync  ({room, epoch, epochChanged, count, lost}) a rejoin could not
 *   replay: count messages came from history instead, lost were gone
 * - gap     ({room, lost}) live seqs were missing and history no longer had them
 * - error   (SwitchboardError) an error no request waits for (rate_limited, a rejoin
 *   refused, the server took the client out of a room: code = the left frame's reason,
 *   "banned" when an operator or the server API banned the user from it)
 * - muted   ({room, until}) this user may read but not write to the room until
 *   until (unix ms; 0: until unmuted); its sends and edits fail with "muted"
 * - unmuted ({room}) the mute was lifted (a timed mute ends without this event)
 * - room_updated ({room, frozen}) the room was frozen or thawed: while frozen,
 *   only operators and the server API write to it, others' writes fail with "frozen"
 * moderation(room) returns what these events told of a room.
 * - welcome, frame: raw frames, for debugging
 * A Client is used from one thread (a tab, a node event loop).
 */
export class Client {
  /** @param {Options} options */
  constructor(options) {
    const o = { ...DEFAULTS, ...options };
    if (!o.url) throw new TypeError('switchboard: url is required');
    const WS = o.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new TypeError('switchboard: no WebSocket here: pass options.WebSocket');
    this.opts = o;
    this.token = o.token;
    this.name = o.name;
    this.newId = idGenerator();
    this.listeners = new Map();
    this.rooms = new Rooms(this);
    this.reads = new Reads(this, o.readIntervalMs);
    /** @type {Map<string, {id: string, onReply: Function, onError: Function, onTimeout: Function, onLost: Function, timer: any}>} */
    this.requests = new Map();
    this.outbox = new Outbox({ resendWindowMs: o.resendWindowMs });
    this.outboxTimers = new Map();
    this.recentAcks = new Map(); // "room\nseq" → id: acks that came before their echo
    this.recentDMs = []; // {id, to, dataKey, at}: acked DMs whose echo is still due
    this.typingAt = new Map();
    this.modState = new Map(); // room → {muted, until, frozen}: see moderation
    this.connected = false;
    this.closed = false;
    this.user = '';
    this.node = '';
    this.session = '';
    this.lastRecv = 0;
    this.heartbeat = null;
    this.status = { state: 'idle' };
    this.conn = new Connection(
      { ...o, WebSocket: WS, url: () => this.endpoint() },
      {
        onText: (text) => this.receive(text),
        onLost: () => this.lost(),
        onStatus: (s) => this.setStatus(s),
      },
    );
  }

  // ---- events ----

  /** on subscribes fn to event and returns a function that unsubscribes. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }

  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        // A broken listener must not break the client; surface it anyway.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  setStatus(s) {
    this.status = s;
    this.emit('status', s);
  }

  // ---- connection ----

  /** start connects; connect() calls it. */
  start() {
    if (!this.closed) this.conn.open();
  }

  endpoint() {
    const u = this.opts.url;
    const sep = u.includes('?') ? '&' : '?';
    if (this.token) return `${u}${sep}token=${encodeURIComponent(this.token)}`;
    if (this.name) return `${u}${sep}name=${encodeURIComponent(this.name)}`;
    return u;
  }

  /** reconnectNow skips the wait of a scheduled reconnect, or reconnects a
   * client that went offline (after 4001, say, with refresh()'s token). */
  reconnectNow() {
    if (!this.closed) this.conn.reconnectNow();
  }

  /** close disconnects for good and fails everything pending with "closed". */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.conn.close();
    const err = () => new SwitchboardError('closed', 'client closed');
    for (const e of this.outbox.all()) this.finish(e, err());
    this.rooms.close(err());
    this.reads.close();
    this.setStatus({ state: 'offline', code: 1000, reason: 'closed by client' });
  }

  /** lost fails or parks what was in flight when the socket went. */
  lost() {
    this.connected = false;
    clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.pinging = false;
    const reqs = [...this.requests.values()];
    this.requests.clear();
    for (const r of reqs) {
      clearTimeout(r.timer);
      r.onLost();
    }
    this.rooms.lostConnection();
    this.reads.lostConnection();
    for (const t of this.outboxTimers.values()) clearTimeout(t);
    this.outboxTimers.clear();
    this.outbox.disconnected();
  }

  // ---- reading ----

  receive(text) {
    const ws = this.conn.ws;
    this.lastRecv = Date.now();
    const frames = parseFrames(text, (line) =>
      this.emit('error', new SwitchboardError('bad_frame', `unreadable frame: ${line.slice(0, 80)}`)),
    );
    for (const f of frames) {
      if (this.conn.ws !== ws) return; // a handler dropped the connection
      this.emit('frame', f);
      this.handle(f);
    }
  }

  handle(f) {
    switch (f.type) {
      case 'welcome':
        return this.onWelcome(f);
      case 'message':
      case 'message_edited':
      case 'message_deleted':
        return this.rooms.onMessage(f);
      case 'epoch':
        return this.rooms.onEpoch(f);
      case 'ack':
        return this.onAck(f);
      case 'dm':
        return this.onDM(f);
      case 'error':
        return this.onError(f);
      case 'typing':
        return this.emit('typing', { room: f.room, user: f.user });
      case 'read':
        return this.reads.onRead(f);
      case 'member_joined':
      case 'member_left':
        this.rooms.onMember(f);
        return this.emit(f.type, { room: f.room, user: f.user, count: f.member_count });
      case 'left':
        if (f.reason !== undefined && f.id === undefined) return this.rooms.onRemoved(f);
        return this.onReply(f);
      case 'muted':
      case 'unmuted':
      case 'room_updated':
        return this.onModerated(f);
      case 'joined':
      case 'presence':
      case 'history':
      case 'pong':
      case 'refreshed':
        return this.onReply(f);
      default:
      // Unknown frames are ignored, so that newer servers keep working.
    }
  }

  onWelcome(f) {
    this.conn.established();
    this.connected = true;
    this.user = f.user;
    this.node = f.node;
    this.session = f.session;
    this.startHeartbeat();
    this.setStatus({ state: 'connected', node: f.node, user: f.user, session: f.session });
    this.emit('welcome', f);
    for (const e of this.outbox.expired()) {
      this.finish(e, new SwitchboardError('expired', 'not acknowledged within the resend window: it may or may not have been delivered'));
    }
    this.rooms.rejoinAll();
    this.flush();
  }

  onReply(f) {
    const r = f.id === undefined ? undefined : this.requests.get(String(f.id));
    if (!r) {
      if (f.type === 'joined') this.rooms.onStrayJoined(f);
      return;
    }
    clearTimeout(r.timer);
    this.requests.delete(r.id);
    r.onReply(f);
  }

  onError(f) {
    // until: when a mute or ban ends (unix ms), on muted and banned errors.
    const err = new SwitchboardError(f.code, f.message, f.until === undefined ? {} : { until: f.until });
    const id = f.id === undefined ? undefined : String(f.id);
    const r = id && this.requests.get(id);
    if (r) {
      clearTimeout(r.timer);
      this.requests.delete(id);
      r.onError(err);
      return;
    }
    const e = id && this.outbox.get(id);
    if (!e) {
      this.emit('error', err);
      return;
    }
    clearTimeout(this.outboxTimers.get(id));
    this.outboxTimers.delete(id);
    if (f.code === 'unavailable' && e.attempts < 3) {
      // The server asks for a resend with the same id; it de-duplicates.
      e.inFlight = false;
      setTimeout(() => this.flush(), 500 * e.attempts);
      return;
    }
    this.finish(e, err);
  }

  // ---- rooms ----

  /**
   * join enters a room and resolves with {room, members, seq, epoch}; seq is
   * the room's last message, so history(room, {before: seq + 1}) loads what
   * came before. After a reconnect the room is rejoined by itself,
   * recovering missed messages. Offline, the join waits for the connection.
   * With opts {since, epoch} (from position(), kept by an earlier client,
   * e.g. across a page reload) the first join recovers too: the messages
   * after since arrive as message events with source "recovery", or, when
   * the server cannot replay them, from history with a resync event.
   * @param {string} room
   * @param {{since?: number, epoch?: string}} [opts]
   * @returns {Promise<{room: string, members: string[], seq: number, epoch: string}>}
   */
  join(room, opts = {}) {
    if (this.closed) return Promise.reject(new SwitchboardError('closed', 'client closed'));
    return this.rooms.join(room, opts);
  }

  /** position returns {since, epoch} for a joined room: the stream position
   * to pass to a later join(room, position) so that it resumes where this
   * one stands. Undefined before the room's first joined. */
  position(room) {
    return this.rooms.position(room);
  }

  /** leave exits a room: no more rejoins, its queued sends fail with
   * not_member. Resolves when the server confirmed, at once when offline. */
  leave(room) {
    return this.rooms.leave(room);
  }

  /** members returns the users in a joined room, as last reported. */
  members(room) {
    return this.rooms.get(room)?.members ?? [];
  }

  /** memberCount returns the number of members of a joined room, as last
   * reported. */
  memberCount(room) {
    return this.rooms.get(room)?.list.count ?? 0;
  }

  /** moreMembers reads the next page of a joined room's members when its
   * list is not whole (a room of more than MEMBER_EVENTS_MAX members);
   * resolves with whether it read one. */
  moreMembers(room) {
    return this.rooms.moreMembers(room);
  }

  /** joinedRooms returns the rooms the client is in or joining. */
  joinedRooms() {
    return this.rooms.names();
  }

  // ---- sending ----

  /**
   * send publishes data (any JSON value but null) to a joined room and
   * resolves with {id, seq, epoch} once the server acknowledged it. Offline, the
   * send waits and goes out after the room is rejoined; one interrupted by a
   * reconnect is resent with the same id, which the server de-duplicates.
   * The promise carries the request id as `.id`; the message event of the
   * echo carries it as meta.id. Pass opts.id to retry a failed send
   * idempotently.
   * @returns {Promise<{id: string, seq: number, epoch: string}> & {id: string}}
   */
  send(room, data, opts = {}) {
    return this.queue('send', { room }, data, opts);
  }

  /**
   * dm sends data to every session of user `to` (and this user's other
   * sessions) and resolves with {id} on the server's ack; it fails with
   * "offline" when that user is not connected. Queued and resent like send.
   * @returns {Promise<{id: string}> & {id: string}}
   */
  dm(to, data, opts = {}) {
    return this.queue('dm', { to }, data, opts);
  }

  queue(kind, where, data, opts) {
    const id = opts.id ?? this.newId();
    const fail = (code, msg) => Object.assign(Promise.reject(new SwitchboardError(code, msg)), { id });
    if (this.closed) return fail('closed', 'client closed');
    if (data === undefined || data === null) return fail('bad_request', 'data is required (any JSON value but null)');
    if (kind === 'send' && !ROOM_RE.test(where.room)) return fail('bad_request', 'bad room name');
    if (kind === 'dm' && !USER_RE.test(where.to)) return fail('bad_request', 'bad user name');
    const existing = this.outbox.get(id);
    if (existing) return existing.promise;
    const frame = JSON.stringify({ type: kind, ...where, data, id });
    if (new TextEncoder().encode(frame).length > this.opts.maxFrameBytes) return fail('too_big', 'message too large');
    let entry;
    const promise = new Promise((resolve, reject) => {
      entry = this.outbox.add({ id, kind, ...where, frame, dataKey: JSON.stringify(data), resolve, reject });
    });
    promise.id = id;
    entry.promise = promise;
    if (kind === 'send') this.typingAt.delete(where.room); // the next keystroke is news again
    this.flush();
    return promise;
  }

  /** flush transmits the queued sends whose room is ready, oldest first. */
  flush() {
    if (!this.connected) return;
    for (const e of this.outbox.ready((room) => this.rooms.ready(room))) {
      this.outbox.markSent(e.id);
      this.conn.send(e.frame);
      const timeout = () => this.finish(e, new SwitchboardError('timeout', 'no answer from the server'));
      this.outboxTimers.set(e.id, setTimeout(timeout, this.opts.requestTimeoutMs));
    }
  }

  /** failSends fails the queued sends to a room. */
  failSends(room, code, message) {
    for (const e of this.outbox.forRoom(room)) this.finish(e, new SwitchboardError(code, message, { room }));
  }

  onAck(f) {
    const id = String(f.id);
    if (this.requests.has(id)) return this.onReply(f); // edit, delete
    const e = this.outbox.get(id);
    if (!e) return;
    if (e.kind === 'send') {
      if (!e.echoed) this.remember(`${e.room}\n${f.seq}`, id);
      this.finish(e, null, { id, seq: f.seq, epoch: this.rooms.epoch(e.room) });
    } else {
      if (!e.echoed) this.recentDMs.push({ id, to: e.to, dataKey: e.dataKey, at: Date.now() });
      this.finish(e, null, { id });
    }
  }

  /** finish removes an outbox entry and settles its promise. */
  finish(e, err, value) {
    if (this.outbox.get(e.id) !== e) return;
    this.outbox.remove(e.id);
    clearTimeout(this.outboxTimers.get(e.id));
    this.outboxTimers.delete(e.id);
    if (err) e.reject(err);
    else e.resolve(value);
  }

  remember(key, id) {
    this.recentAcks.set(key, id);
    if (this.recentAcks.size > 256) this.recentAcks.delete(this.recentAcks.keys().next().value);
  }

  /** ownSend returns the request id of the send that message m, from this
   * user, echoes: by the ack's seq, or by payload while the ack is due. */
  ownSend(room, m) {
    const key = `${room}\n${m.seq}`;
    const id = this.recentAcks.get(key);
    if (id !== undefined) {
      this.recentAcks.delete(key);
      return id;
    }
    const e = this.outbox.matchEcho('send', room, JSON.stringify(m.data));
    if (!e) return undefined;
    e.echoed = true;
    return e.id;
  }

  onDM(f) {
    const meta = {};
    if (f.from === this.user) {
      const dataKey = JSON.stringify(f.data);
      const now = Date.now();
      this.recentDMs = this.recentDMs.filter((d) => now - d.at < 30000);
      const i = this.recentDMs.findIndex((d) => d.to === f.to && d.dataKey === dataKey);
      if (i >= 0) {
        meta.id = this.recentDMs.splice(i, 1)[0].id;
      } else {
        const e = this.outbox.matchEcho('dm', f.to, dataKey);
        if (e) {
          e.echoed = true;
          meta.id = e.id;
        }
      }
    }
    this.emit('dm', f, meta);
  }

  /** typing tells the room's other users that this user is typing; calls
   * closer together than typingIntervalMs send nothing. */
  typing(room) {
    if (!this.connected || !this.rooms.get(room)?.ready) return;
    const now = Date.now();
    if (now - (this.typingAt.get(room) ?? -Infinity) < this.opts.typingIntervalMs) return;
    this.typingAt.set(room, now);
    this.write({ type: 'typing', room });
  }

  /**
   * edit replaces the data of a message this user sent to a joined room
   * (seq: its seq) and resolves with {id, seq, epoch}, seq being the edit's
   * own. It fails with not_found (no such message in the retained history,
   * or deleted), forbidden (another user's), not_member, or disconnected
   * when offline; pass opts.id to retry idempotently.
   * @returns {Promise<{id: string, seq: number, epoch: string}>}
   */
  edit(room, seq, data, opts = {}) {
    if (data === undefined || data === null) {
      return Promise.reject(new SwitchboardError('bad_request', 'data is required (any JSON value but null)'));
    }
    return this.change({ type: 'edit', room, seq, data }, opts);
  }

  /**
   * delete deletes a message this user sent to a joined room and resolves
   * with {id, seq, epoch}; it fails as edit does.
   * @returns {Promise<{id: string, seq: number, epoch: string}>}
   */
  delete(room, seq, opts = {}) {
    return this.change({ type: 'delete', room, seq }, opts);
  }

  change(frame, opts) {
    if (!ROOM_RE.test(frame.room)) return Promise.reject(new SwitchboardError('bad_request', 'bad room name'));
    if (!Number.isSafeInteger(frame.seq) || frame.seq < 1) {
      return Promise.reject(new SwitchboardError('bad_request', 'seq must be the seq of a message'));
    }
    const id = opts.id ?? this.newId();
    return this.call({ ...frame, id }, (f) => ({ id, seq: f.seq, epoch: f.epoch }));
  }

  // ---- read positions ----

  /** read tells the server that this user read a joined room up to seq
   * (a message's seq; one beyond the newest message the client got counts
   * as that one). The position only moves forward; reports go at most
   * once per readIntervalMs per room, the latest winning, and wait for the
   * rejoin while offline. Returns whether the position moved. */
  read(room, seq) {
    return this.reads.read(room, seq);
  }

  /** readSeq returns this user's read position in a joined room: the
   * joined answer's, or a later read(). */
  readSeq(room) {
    return this.reads.rooms.get(room)?.seq ?? 0;
  }

  /** unread returns the number of messages of others after this user's read
   * position in a joined room: the joined answer's count (an upper bound
   * while a read stops short of the joined seq) plus those delivered since. */
  unread(room) {
    return this.reads.unread(room);
  }

  /** readers returns the read positions other members reported in a joined
   * room since it was joined, as a Map of user to seq. */
  readers(room) {
    return new Map(this.reads.rooms.get(room)?.readers ?? []);
  }

  // ---- moderation ----

  /** onJoinedModeration takes the user's standing from a joined answer
   * (frozen, muted, muted_until) and emits what changed as the events would
   * have: a page that reloads learns a mute or freeze at once. */
  onJoinedModeration(f) {
    const cur = this.moderation(f.room);
    if (f.muted === true && (!cur.muted || cur.until !== (f.muted_until ?? 0))) {
      this.onModerated({ type: 'muted', room: f.room, until: f.muted_until ?? 0 });
    } else if (f.muted !== true && cur.muted) {
      this.onModerated({ type: 'unmuted', room: f.room });
    }
    if ((f.frozen === true) !== cur.frozen) this.onModerated({ type: 'room_updated', room: f.room, frozen: f.frozen === true });
  }

  /** onModerated records and emits muted, unmuted and room_updated. */
  onModerated(f) {
    const st = { ...this.moderation(f.room) };
    if (f.type === 'muted') Object.assign(st, { muted: true, until: f.until ?? 0 });
    if (f.type === 'unmuted') Object.assign(st, { muted: false, until: 0 });
    if (f.type === 'room_updated') st.frozen = f.frozen === true;
    this.modState.set(f.room, st);
    if (f.type === 'room_updated') return this.emit('room_updated', { room: f.room, frozen: st.frozen });
    if (f.type === 'muted') return this.emit('muted', { room: f.room, until: st.until });
    return this.emit('unmuted', { room: f.room });
  }

  /**
   * moderation returns what this client was told of a room since it
   * connected: {muted, until, frozen}. muted turns false by itself once a
   * timed mute's until has passed. It knows what the events and the joined
   * answers said.
   * @returns {{muted: boolean, until: number, frozen: boolean}}
   */
  moderation(room) {
    const st = this.modState.get(room) ?? { muted: false, until: 0, frozen: false };
    if (st.muted && st.until !== 0 && st.until <= Date.now()) return { ...st, muted: false, until: 0 };
    return st;
  }

  /**
   * mute, unmute, ban, unban, freeze and unfreeze moderate a room; they need
   * the token's op claim to match the room (else they fail with
   * "forbidden") and resolve with {id} once done. opts.duration (mute and
   * ban) is a Go duration such as "10m" (default: until lifted); opts.reason
   * is a ban's. A banned user's sessions leave the room with a left frame of
   * reason "banned" (their client emits error "banned").
   * @returns {Promise<{id: string}>}
   */
  mute(room, user, { duration } = {}) {
    return this.moderate({ type: 'mute', room, user, duration });
  }

  /** @returns {Promise<{id: string}>} */
  unmute(room, user) {
    return this.moderate({ type: 'unmute', room, user });
  }

  /** @returns {Promise<{id: string}>} */
  ban(room, user, { duration, reason } = {}) {
    return this.moderate({ type: 'ban', room, user, duration, reason });
  }

  /** @returns {Promise<{id: string}>} */
  unban(room, user) {
    return this.moderate({ type: 'unban', room, user });
  }

  /** @returns {Promise<{id: string}>} */
  freeze(room) {
    return this.moderate({ type: 'freeze', room });
  }

  /** @returns {Promise<{id: string}>} */
  unfreeze(room) {
    return this.moderate({ type: 'unfreeze', room });
  }

  moderate(frame) {
    if (!ROOM_RE.test(frame.room)) return Promise.reject(new SwitchboardError('bad_request', 'bad room name'));
    for (const k of Object.keys(frame)) if (frame[k] === undefined) delete frame[k];
    const id = this.newId();
    return this.call({ ...frame, id }, () => ({ id }));
  }

  // ---- other requests ----

  /** history resolves with {room, epoch, messages} (oldest first): up to
   * limit (1-100, default 50) entries of the room's stream with seq below
   * before (default: the newest): messages, and message_edited and
   * message_deleted frames to apply to the messages they target. Fails with
   * "disconnected" when offline. */
  history(room, { limit = 50, before } = {}) {
    const frame = { type: 'history', room, limit };
    if (before) frame.before = before;
    return this.call(frame, (f) => ({ room: f.room, epoch: f.epoch, messages: f.messages ?? [] }));
  }

  /** presence resolves with the users in a room, on any node: the first
   * MAX_PRESENCE_PAGE of them, sorted (presencePage reads further). */
  presence(room) {
    return this.presencePage(room).then((p) => p.members);
  }

  /** presencePage resolves with {members, count, next}: up to limit (1-1000,
   * default 1000) of a room's users sorted after the user after, the room's
   * member count, and the after of the next page (undefined on the last). */
  presencePage(room, { after, limit } = {}) {
    const frame = { type: 'presence', room };
    if (after) frame.after = after;
    if (limit) frame.limit = limit;
    return this.call(frame, (f) => ({
      members: f.members ?? [],
      count: f.member_count ?? (f.members ?? []).length,
      next: f.members_next,
    }));
  }

  /** ping resolves with the round-trip time in ms. */
  ping() {
    const t = Date.now();
    return this.call({ type: 'ping' }, () => Date.now() - t);
  }

  /** refresh hands the server a new token and resolves with its expiry in
   * unix seconds. The token is also used for every later reconnect: after a
   * 4001 close, call refresh(newToken) (it fails with "disconnected") and
   * then reconnectNow(). */
  refresh(token) {
    this.token = token;
    return this.call({ type: 'refresh', token }, (f) => f.exp);
  }

  call(frame, map) {
    if (!this.connected) return Promise.reject(new SwitchboardError('disconnected', 'not connected'));
    return new Promise((resolve, reject) => {
      this.request(frame, {
        onReply: (f) => resolve(map(f)),
        onError: reject,
        onTimeout: () => reject(new SwitchboardError('timeout', `no answer to ${frame.type}`)),
        onLost: () =>
          reject(this.closed ? new SwitchboardError('closed', 'client closed') : new SwitchboardError('disconnected', 'connection lost')),
      });
    });
  }

  /** request writes frame with its id (a fresh one when it has none) and routes its answer, error,
   * timeout or the loss of the connection to handlers. */
  request(frame, handlers) {
    const id = frame.id ?? this.newId();
    const r = { id, ...handlers, timer: null };
    this.requests.set(id, r);
    this.write({ ...frame, id });
    r.timer = setTimeout(() => {
      if (this.requests.get(id) !== r) return;
      this.requests.delete(id);
      r.onTimeout();
    }, this.opts.requestTimeoutMs);
    return r;
  }

  write(frame) {
    this.conn.send(JSON.stringify(frame));
  }

  /** startHeartbeat pings after heartbeatMs of silence and drops a
   * connection whose ping goes unanswered (a dead peer, a sleeping laptop). */
  startHeartbeat() {
    const every = this.opts.heartbeatMs;
    if (!every) return;
    this.heartbeat = setInterval(() => {
      if (!this.connected || this.pinging || Date.now() - this.lastRecv < every) return;
      this.pinging = true;
      const done = () => (this.pinging = false);
      this.request({ type: 'ping' }, {
        onReply: done,
        onError: done,
        onLost: done,
        onTimeout: () => {
          done();
          this.conn.drop('heartbeat timeout');
        },
      });
    }, every);
  }
}
