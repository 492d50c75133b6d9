// Reads: this user's read position per room, reported to the server
// coalesced, and the read positions other members report.

/** How often the client reports a room's read position at most (the server
 * stores and relays at most this often too: protocol.ReadInterval). */
export const READ_INTERVAL_MS = 250;

/** Most seqs of others' messages kept per room to count unread ones. */
const MAX_TRACKED = 1000;

/**
 * Reads keeps, per joined room, this user's read position (the seq of the
 * last message read, in the room's current epoch), the unread count, and
 * the positions other members reported with read frames.
 *
 * read(room, seq) moves the position forward only, and reports it to the
 * server at most once per READ_INTERVAL_MS per room: the first report of
 * an interval goes at once, later ones are coalesced into one at its end.
 * Offline, or while the room rejoins, the latest report waits for the
 * joined answer and goes then, unless the server already has it.
 *
 * It is the Client's helper, not an API of its own.
 */
export class Reads {
  /** @param {import('../switchboard.js').Client} client */
  constructor(client, intervalMs = READ_INTERVAL_MS) {
    this.c = client;
    this.intervalMs = intervalMs;
    /** @type {Map<string, RoomReads>} */
    this.rooms = new Map();
  }

  room(name) {
    let r = this.rooms.get(name);
    if (!r) {
      r = { epoch: '', seq: 0, joinedSeq: 0, joinedUnread: 0, capped: false, others: [], readers: new Map(), pending: 0, sentAt: -Infinity, timer: null };
      this.rooms.set(name, r);
    }
    return r;
  }

  /** read records that this user read room up to seq and schedules the
   * report; it returns whether the position moved. A seq beyond the newest
   * message the client got counts as that one. */
  read(name, seq) {
    const room = this.c.rooms.get(name);
    const last = room?.stream?.last ?? 0;
    if (!room?.stream || !Number.isSafeInteger(seq) || seq < 1) return false;
    const r = this.room(name);
    seq = Math.min(seq, last);
    if (r.epoch !== room.stream.epoch) this.restart(r, room.stream.epoch);
    if (seq <= r.seq) return false;
    r.seq = seq;
    r.pending = seq;
    this.c.emit('unread', { room: name, readSeq: r.seq, unread: this.unread(name), capped: this.capped(name) });
    this.schedule(name, r);
    return true;
  }

  /** schedule sends r's pending report now, or at the end of its interval. */
  schedule(name, r) {
    if (r.timer) return;
    const wait = r.sentAt + this.intervalMs - Date.now();
    if (wait > 0) {
      r.timer = setTimeout(() => {
        r.timer = null;
        this.flush(name, r);
      }, wait);
      return;
    }
    this.flush(name, r);
  }

  /** flush sends r's pending report when the room is joined on this
   * connection; else the joined answer sends it. */
  flush(name, r) {
    if (!r.pending || !this.c.connected || !this.c.rooms.get(name)?.ready || this.rooms.get(name) !== r) return;
    this.c.write({ type: 'read', room: name, seq: r.pending });
    r.pending = 0;
    r.sentAt = Date.now();
  }

  /** onJoined takes the joined answer's read position and unread count, and
   * sends a report the server does not have yet. */
  onJoined(name, f) {
    const r = this.room(name);
    if (r.epoch !== f.epoch) this.restart(r, f.epoch);
    const readSeq = f.read_seq ?? 0;
    r.seq = Math.max(r.seq, readSeq);
    r.joinedSeq = f.seq;
    r.joinedUnread = f.unread ?? 0;
    r.capped = f.unread_capped === true;
    r.others = [];
    r.sentAt = -Infinity; // a new connection
    if (r.pending <= readSeq) r.pending = 0;
    if (r.pending) this.schedule(name, r);
    this.c.emit('unread', { room: name, readSeq: r.seq, unread: this.unread(name), capped: this.capped(name) });
  }

  /** restart forgets what belongs to another epoch of the room. */
  restart(r, epoch) {
    Object.assign(r, { epoch, seq: 0, joinedSeq: 0, joinedUnread: 0, capped: false, others: [], pending: 0 });
    r.readers.clear();
  }

  /** onEpoch starts the room's positions over: its seqs start again. */
  onEpoch(name, epoch) {
    const r = this.rooms.get(name);
    if (r && r.epoch !== epoch) {
      this.restart(r, epoch);
      this.c.emit('unread', { room: name, readSeq: 0, unread: 0, capped: false });
    }
  }

  /** onMessage counts a message delivered after the joined answer. */
  onMessage(name, m) {
    const r = this.rooms.get(name);
    if (!r || m.from === this.c.user || m.seq <= r.joinedSeq || m.seq <= r.seq) return;
    r.others.push(m.seq);
    if (r.others.length > MAX_TRACKED) r.others.shift();
    this.c.emit('unread', { room: name, readSeq: r.seq, unread: this.unread(name), capped: this.capped(name) });
  }

  /** onRead keeps another member's reported position. */
  onRead(f) {
    const r = this.rooms.get(f.room);
    if (!r || !this.c.rooms.get(f.room)?.ready) return;
    if (f.seq <= (r.readers.get(f.user) ?? 0)) return;
    r.readers.set(f.user, f.seq);
    this.c.emit('read', { room: f.room, user: f.user, seq: f.seq });
  }

  /** unread counts the messages of others after the read position: the
   * joined answer's count until a read reaches the joined seq (a read
   * short of it leaves that count as it was: an upper bound), plus those
   * delivered since. */
  unread(name) {
    const r = this.rooms.get(name);
    if (!r) return 0;
    const before = r.seq >= r.joinedSeq ? 0 : r.joinedUnread;
    return before + r.others.filter((s) => s > r.seq).length;
  }

  /** capped reports that the joined count was capped by the history kept. */
  capped(name) {
    const r = this.rooms.get(name);
    return !!r && r.capped && r.seq < r.joinedSeq;
  }

  /** lostConnection stops the timers: the rejoin's joined answer sends
   * what is pending. */
  lostConnection() {
    for (const r of this.rooms.values()) {
      clearTimeout(r.timer);
      r.timer = null;
    }
  }

  /** forget drops a room that was left. */
  forget(name) {
    const r = this.rooms.get(name);
    if (r) clearTimeout(r.timer);
    this.rooms.delete(name);
  }

  close() {
    for (const name of [...this.rooms.keys()]) this.forget(name);
  }
}

/**
 * @typedef {object} RoomReads
 * @property {string} epoch            the epoch seq and the others belong to
 * @property {number} seq              this user's read position
 * @property {number} joinedSeq        the room's seq in the last joined answer
 * @property {number} joinedUnread     that answer's unread count
 * @property {boolean} capped          that count was capped
 * @property {number[]} others         seqs of others' messages delivered since
 * @property {Map<string, number>} readers  positions other members reported
 * @property {number} pending          the position to report, or 0
 * @property {number} sentAt           when the last report went
 * @property {any} timer               the coalesced report's timer
 */
