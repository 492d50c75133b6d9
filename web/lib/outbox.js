// Outbox: sends and DMs not yet acknowledged by the server.

/** Default for Outbox's resendWindowMs: below the server's 5-minute
 * idempotency window, so a resend is always recognised as one. */
export const RESEND_WINDOW_MS = 4 * 60 * 1000;

/**
 * Outbox keeps the sends and DMs the server has not acknowledged, in the
 * order they were made, across reconnects. An entry is resent with its
 * original id, which the server de-duplicates, so a message is delivered
 * once even when its first copy reached the server and only the ack was
 * lost.
 *
 * Entry lifecycle: add → (markSent → [disconnected → markSent …]) → remove
 * (on ack, error or expiry). It holds no timers and does no I/O.
 */
export class Outbox {
  /**
   * @param {{resendWindowMs?: number, now?: () => number}} [opts]
   *        resendWindowMs: how long after its first transmission an entry may
   *        still be resent (default RESEND_WINDOW_MS); now: clock (Date.now).
   */
  constructor(opts = {}) {
    this.resendWindowMs = opts.resendWindowMs ?? RESEND_WINDOW_MS;
    this.now = opts.now ?? Date.now;
    /** @type {Map<string, OutboxEntry>} insertion order is send order */
    this.entries = new Map();
  }

  /**
   * add queues a send ({id, kind: "send", room, frame, dataKey}) or DM
   * ({id, kind: "dm", to, frame, dataKey}). `frame` is the JSON text to
   * transmit and `dataKey` a canonical form of the payload used to recognise
   * the server's echo. Other fields (the caller's callbacks) are kept as they
   * are on the entry.
   * @returns {OutboxEntry}
   */
  add(fields) {
    const e = { firstSentAt: null, inFlight: false, attempts: 0, echoed: false, ...fields };
    this.entries.set(e.id, e);
    return e;
  }

  get(id) {
    return this.entries.get(id);
  }

  /** remove drops an entry and returns it, or undefined. */
  remove(id) {
    const e = this.entries.get(id);
    this.entries.delete(id);
    return e;
  }

  get size() {
    return this.entries.size;
  }

  /**
   * ready returns, oldest first, the entries waiting to be transmitted whose
   * destination can take them now: every DM, and sends to rooms for which
   * roomReady(room) is true.
   * @param {(room: string) => boolean} roomReady
   */
  ready(roomReady) {
    const out = [];
    for (const e of this.entries.values()) {
      if (!e.inFlight && (e.kind === 'dm' || roomReady(e.room))) out.push(e);
    }
    return out;
  }

  /** markSent records a transmission of entry id. */
  markSent(id) {
    const e = this.entries.get(id);
    if (!e) return;
    e.inFlight = true;
    e.attempts += 1;
    if (e.firstSentAt === null) e.firstSentAt = this.now();
  }

  /** disconnected marks every entry as waiting again: it will be resent. */
  disconnected() {
    for (const e of this.entries.values()) e.inFlight = false;
  }

  /**
   * expired removes and returns the entries sent before but longer ago than
   * the resend window: resending them could duplicate a message whose id the
   * server has forgotten. Entries never transmitted do not expire.
   */
  expired() {
    const out = [];
    const now = this.now();
    for (const e of this.entries.values()) {
      if (e.firstSentAt !== null && now - e.firstSentAt > this.resendWindowMs) out.push(e);
    }
    for (const e of out) this.entries.delete(e.id);
    return out;
  }

  /**
   * matchEcho returns the oldest transmitted entry the given echo of the
   * user's own message could be: same kind, same room (send) or recipient
   * (dm), same payload, not yet matched. The server echoes a sender's own
   * messages without the request id; this lets the caller tie them back.
   * @param {"send"|"dm"} kind
   * @param {string} where  room or recipient
   * @param {string} dataKey
   */
  matchEcho(kind, where, dataKey) {
    for (const e of this.entries.values()) {
      if (e.kind !== kind || e.firstSentAt === null || e.echoed || e.dataKey !== dataKey) continue;
      if ((kind === 'send' ? e.room : e.to) === where) return e;
    }
    return undefined;
  }

  /** forRoom returns the entries of sends to room, oldest first. */
  forRoom(room) {
    return [...this.entries.values()].filter((e) => e.kind === 'send' && e.room === room);
  }

  /** all returns every entry, oldest first. */
  all() {
    return [...this.entries.values()];
  }
}

/**
 * @typedef {object} OutboxEntry
 * @property {string} id         request id, reused by every resend
 * @property {"send"|"dm"} kind
 * @property {string} [room]     send: the room
 * @property {string} [to]       dm: the recipient
 * @property {string} frame      JSON text of the frame
 * @property {string} dataKey    canonical JSON of the payload
 * @property {number|null} firstSentAt ms of the first transmission; null if none yet
 * @property {boolean} inFlight  transmitted on the current connection
 * @property {number} attempts   transmissions so far
 * @property {boolean} echoed   the server's echo was matched to this entry
 */
