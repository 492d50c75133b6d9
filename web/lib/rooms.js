// Rooms: membership, rejoin after reconnect, recovery of missed messages.

import { SwitchboardError } from './errors.js';
import { MAX_PRESENCE_PAGE, MemberList } from './members.js';
import { RoomStream } from './stream.js';

/** Largest history page the server returns. */
export const MAX_HISTORY = 100;

const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * Rooms keeps the rooms a Client is in and their message streams. After a
 * reconnect it rejoins each with since/epoch; when the server cannot replay
 * what was missed it reloads it from history; gaps in live delivery are
 * filled from history too. Every message reaches the "message" event once,
 * in seq order.
 *
 * It is the Client's helper, not an API of its own: it calls back into the
 * client for requests, writes, events and the outbox.
 */
export class Rooms {
  /** @param {import('../switchboard.js').Client} client */
  constructor(client) {
    this.c = client;
    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    this.fromHistory = new WeakSet();
  }

  get(name) {
    return this.rooms.get(name);
  }

  has(name) {
    return this.rooms.has(name);
  }

  names() {
    return [...this.rooms.keys()];
  }

  /** ready reports whether room is joined on the current connection; a room
   * never asked for counts as ready, so the server answers not_member. */
  ready(name) {
    const r = this.rooms.get(name);
    return !r || r.ready;
  }

  /** position returns where a room's stream stands, {since, epoch}: every
   * message up to seq `since` of that epoch was delivered (or given up on). */
  position(name) {
    const st = this.rooms.get(name)?.stream;
    return st ? { since: st.last, epoch: st.epoch } : undefined;
  }

  /** epoch returns the epoch of a joined room's stream, or undefined. */
  epoch(name) {
    return this.rooms.get(name)?.stream?.epoch;
  }

  /** join enters a room; from ({since, epoch}, optional) resumes a stream
   * position kept from an earlier client, as a rejoin after a reconnect does. */
  join(name, from) {
    if (!ROOM_RE.test(name)) {
      return Promise.reject(new SwitchboardError('bad_request', 'room must be 1-64 of A-Z a-z 0-9 _ . : -'));
    }
    let r = this.rooms.get(name);
    if (r?.ready) return Promise.resolve(r.info);
    if (!r) {
      r = { name, stream: null, members: [], list: new MemberList(), listGen: 0, ready: false, waiters: [], recovering: null, info: null };
      if (validPosition(from)) r.stream = new RoomStream(from.epoch, from.since);
      this.rooms.set(name, r);
      if (this.c.connected) this.sendJoin(r);
    }
    return new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
  }

  /** rejoinAll joins every room again on a new connection. */
  rejoinAll() {
    for (const r of this.rooms.values()) this.sendJoin(r);
  }

  /** lostConnection forgets per-connection state; streams keep their
   * position for the rejoin. */
  lostConnection() {
    for (const r of this.rooms.values()) {
      r.ready = false;
      r.recovering = null;
      r.stream?.reset();
    }
  }

  sendJoin(room) {
    const frame = { type: 'join', room: room.name };
    if (room.stream) {
      frame.since = room.stream.last;
      frame.epoch = room.stream.epoch;
    }
    this.c.request(frame, {
      onReply: (f) => this.onJoined(room, f),
      onError: (err) => this.joinFailed(room, err),
      onTimeout: () => {
        // A join the app waits for fails; a silent rejoin that times out
        // means the connection is unhealthy: start over.
        if (room.waiters.length > 0) this.joinFailed(room, new SwitchboardError('timeout', 'join timed out'));
        else this.c.conn.drop('rejoin timed out');
      },
      onLost: () => {}, // the next connection rejoins
    });
  }

  joinFailed(room, err) {
    if (this.rooms.get(room.name) !== room) return;
    this.rooms.delete(room.name);
    this.c.reads.forget(room.name);
    err.room = room.name;
    this.c.failSends(room.name, err.code, err.message);
    const waiters = room.waiters.splice(0);
    for (const w of waiters) w.reject(err);
    if (waiters.length === 0) this.c.emit('error', err); // a rejoin was refused
  }

  /** onStrayJoined answers a joined nobody waits for (its request timed
   * out): leave, unless the room is wanted again. */
  onStrayJoined(f) {
    if (!this.rooms.has(f.room)) this.c.write({ type: 'leave', room: f.room });
  }

  /** onRemoved handles a left the server sent unasked (reason "forbidden": a
   * refreshed token no longer allows the room): the room is gone, as if a
   * rejoin had been refused. */
  onRemoved(f) {
    const room = this.rooms.get(f.room);
    if (room) this.joinFailed(room, new SwitchboardError(f.reason, `removed from the room: ${f.reason}`));
  }

  onJoined(room, f) {
    if (this.rooms.get(room.name) !== room) {
      this.onStrayJoined(f); // left while joining
      return;
    }
    const prev = room.stream;
    room.list.fromJoined(f);
    room.listGen++;
    room.members = room.list.list();
    room.ready = true;
    room.info = {
      room: f.room, members: room.members, count: room.list.count, seq: f.seq, epoch: f.epoch,
      readSeq: f.read_seq ?? 0, unread: f.unread ?? 0, unreadCapped: f.unread_capped === true,
    };
    if (!prev) {
      room.stream = new RoomStream(f.epoch, f.seq);
    } else if (f.recovered === true && prev.epoch === f.epoch) {
      // The missed messages follow this frame.
      if (prev.last < f.seq) room.recovering = { through: f.seq, count: 0 };
      else this.c.emit('recovered', { room: room.name, count: 0 });
    } else {
      this.resync(room, f);
    }
    this.c.reads.onJoined(room.name, f);
    this.c.onJoinedModeration(f);
    for (const w of room.waiters.splice(0)) w.resolve(room.info);
    this.emitMembers(room);
    this.c.emit('joined', { ...room.info, recovered: f.recovered });
    this.c.flush();
    this.pageMembers(room);
  }

  /** resync reloads from history what a rejoin could not recover: the missed
   * messages of the same epoch, or the whole of a new epoch. */
  resync(room, f) {
    const prev = room.stream;
    const epochChanged = prev.epoch !== f.epoch;
    const stream = epochChanged ? new RoomStream(f.epoch, 0) : prev;
    room.stream = stream;
    const done = (count, lost) =>
      this.c.emit('resync', { room: room.name, epoch: stream.epoch, epochChanged, count, lost });
    if (stream.last >= f.seq) {
      done(0, 0);
      return;
    }
    stream.beginFill();
    this.fetch(room, stream, stream.last, f.seq, done);
  }

  /** fetch asks history for seqs after+1 … through (the newest MAX_HISTORY
   * of them) and fills the stream with the answer. A failed request gives
   * the range up as lost rather than stalling the room. */
  fetch(room, stream, after, through, done) {
    const fill = (messages) => {
      if (room.stream !== stream || this.rooms.get(room.name) !== room) return;
      for (const m of messages) this.fromHistory.add(m);
      const res = stream.fill(messages, through);
      this.deliver(room, res.deliver);
      done(res.deliver.filter((m) => m.seq <= through).length, res.lost);
      if (res.gap) this.fillGap(room, res.gap);
    };
    const limit = Math.min(through - after, MAX_HISTORY);
    this.c.request({ type: 'history', room: room.name, limit, before: through + 1 }, {
      onReply: (page) => fill(page.epoch === stream.epoch ? (page.messages ?? []) : []),
      onError: () => fill([]),
      onTimeout: () => fill([]),
      onLost: () => {}, // the rejoin recovers from stream.last
    });
  }

  fillGap(room, gap) {
    this.fetch(room, room.stream, gap.after, gap.before - 1, (count, lost) => {
      if (lost > 0) this.c.emit('gap', { room: room.name, lost });
    });
  }

  /** onEpoch handles the server's news that a room's history was lost and
   * restarted in a new epoch: the stream starts again before seq 1. */
  onEpoch(f) {
    const room = this.rooms.get(f.room);
    if (!room?.ready || room.stream.epoch === f.epoch) return;
    room.stream = new RoomStream(f.epoch, 0);
    room.info = { ...room.info, seq: 0, epoch: f.epoch, readSeq: 0, unread: 0, unreadCapped: false };
    this.c.reads.onEpoch(room.name, f.epoch);
    this.c.emit('resync', { room: room.name, epoch: f.epoch, epochChanged: true, count: 0, lost: 0 });
  }

  onMessage(f) {
    const room = this.rooms.get(f.room);
    if (!room?.ready) return; // not (yet) in the room
    const res = room.stream.push(f);
    this.deliver(room, res.deliver);
    if (res.gap) this.fillGap(room, res.gap);
  }

  deliver(room, messages) {
    for (const m of messages) {
      let source = this.fromHistory.has(m) ? 'history' : 'live';
      const rec = room.recovering;
      if (rec && m.seq <= rec.through) {
        source = 'recovery';
        rec.count++;
      }
      const meta = { source, epoch: room.stream.epoch };
      if (m.type === 'message_edited' || m.type === 'message_deleted') {
        this.c.emit(m.type, m, meta); // entries of the stream too: in seq order
      } else {
        if (m.from === this.c.user) meta.id = this.c.ownSend(room.name, m);
        this.c.reads.onMessage(room.name, m);
        this.c.emit('message', m, meta);
      }
      if (rec && room.recovering === rec && room.stream.last >= rec.through) {
        room.recovering = null;
        this.c.emit('recovered', { room: room.name, count: rec.count });
      }
    }
  }

  onMember(f) {
    const room = this.rooms.get(f.room);
    if (!room?.ready) return;
    if (room.list.onEvent(f)) {
      // The room is small again: the list missed the changes while it was
      // large. Read it again.
      room.list.restart();
      room.listGen++;
    }
    this.emitMembers(room);
    this.pageMembers(room);
  }

  emitMembers(room) {
    room.members = room.list.list();
    const { count, complete } = room.list;
    this.c.emit('members', { room: room.name, members: room.members, count, complete });
  }

  /** pageMembers asks for the next page of a room's members while the
   * list is partial in a room that sends member events, one page at a time. */
  pageMembers(room) {
    const after = room.list.next();
    if (after !== null) this.askPage(room, after);
  }

  /** moreMembers asks for the page after the last member listed, in a room
   * too large for its list to be kept whole. Resolves when it is merged;
   * false when there is nothing more to ask for. */
  moreMembers(name) {
    const room = this.rooms.get(name);
    const l = room?.list;
    if (!room?.ready || !l || l.complete || l.pending || l.cursor === null) return Promise.resolve(false);
    return new Promise((resolve) => this.askPage(room, l.cursor, resolve));
  }

  askPage(room, after, done = () => {}) {
    const gen = room.listGen;
    const current = () => this.rooms.get(room.name) === room && room.listGen === gen;
    const frame = { type: 'presence', room: room.name, limit: MAX_PRESENCE_PAGE };
    if (after) frame.after = after;
    room.list.asking();
    const fail = () => {
      if (current()) room.list.abandon();
      done(false);
    };
    this.c.request(frame, {
      onReply: (f) => {
        if (!current()) return done(false);
        room.list.page(f);
        this.emitMembers(room);
        this.pageMembers(room);
        done(true);
      },
      onError: fail,
      onTimeout: fail,
      onLost: () => done(false), // the rejoin starts the list over
    });
  }

  leave(name) {
    const r = this.rooms.get(name);
    if (!r) return Promise.resolve();
    this.rooms.delete(name);
    this.c.reads.forget(name);
    for (const w of r.waiters.splice(0)) w.reject(new SwitchboardError('left', 'left the room before it was joined'));
    this.c.failSends(name, 'not_member', 'left the room');
    if (!this.c.connected || !r.ready) return Promise.resolve(); // a stray joined is answered with leave
    return new Promise((resolve) => {
      const done = () => resolve();
      this.c.request({ type: 'leave', room: name }, { onReply: done, onError: done, onTimeout: done, onLost: done });
    });
  }

  /** close fails every join still waiting. */
  close(err) {
    for (const r of this.rooms.values()) for (const w of r.waiters.splice(0)) w.reject(err);
  }
}

/** validPosition reports whether p is a usable {since, epoch}. */
function validPosition(p) {
  return p != null && Number.isSafeInteger(p.since) && p.since >= 0 && typeof p.epoch === 'string' && p.epoch !== '';
}

/**
 * @typedef {object} Room
 * @property {string} name
 * @property {RoomStream|null} stream  null until the first joined
 * @property {string[]} members      the members known, sorted
 * @property {MemberList} list        the member list and count
 * @property {number} listGen         bumped when the list starts over
 * @property {boolean} ready           joined on the current connection
 * @property {{resolve: Function, reject: Function}[]} waiters  join() calls waiting
 * @property {{through: number, count: number}|null} recovering  replay in progress
 * @property {object|null} info        the last joined answer
 */
