// RoomStream: per-room ordering, de-duplication and gap detection.

/**
 * RoomStream tracks one room's message stream within one epoch: `last` is
 * the highest seq handed to the application, with every seq below it either
 * delivered or given up on. Messages arrive by push (live, or replayed after
 * a recovering join) and by fill (a history page). Each message leaves the
 * stream once, in seq order:
 *
 * - a seq at or below `last`, or one already buffered, is a duplicate and is
 *   dropped (a resend, a replay overlapping live delivery, a history page
 *   overlapping both);
 * - a seq above last+1 is held, and push reports the gap so that the caller
 *   can ask history for the missing seqs and hand them to fill;
 * - while a fill is pending, pushed messages are held so that the filled ones
 *   come out first.
 *
 * Messages are any objects with a numeric `seq`; the stream never looks at
 * anything else. Not safe for use by more than one caller at a time (a
 * browser tab has one thread anyway).
 */
export class RoomStream {
  /**
   * @param {string} epoch  the epoch the seqs belong to
   * @param {number} last   seq already seen: later messages start at last+1
   */
  constructor(epoch, last) {
    this.epoch = epoch;
    this.last = last;
    /** @type {Map<number, object>} held messages by seq */
    this.held = new Map();
    /** true while a fill is pending: pushes are held */
    this.filling = false;
  }

  /**
   * push offers one message. It returns the messages now deliverable in seq
   * order (possibly none), whether the message was a duplicate, and, when a
   * seq is missing, the gap as {after, before}: the seqs after+1 … before-1
   * are missing. After a gap is reported the stream waits for fill.
   *
   * @param {{seq: number}} msg
   * @returns {{deliver: object[], duplicate: boolean, gap: {after: number, before: number} | null}}
   */
  push(msg) {
    const seq = msg.seq;
    if (!Number.isSafeInteger(seq) || seq <= this.last || this.held.has(seq)) {
      return { deliver: [], duplicate: true, gap: null };
    }
    this.held.set(seq, msg);
    if (this.filling) return { deliver: [], duplicate: false, gap: null };
    const deliver = this.drain();
    return { deliver, duplicate: false, gap: this.gap() };
  }

  /** beginFill holds pushed messages until the next fill. */
  beginFill() {
    this.filling = true;
  }

  /**
   * fill ends a pending fill with the messages a history request returned
   * (any order; those at or below `last` are ignored as duplicates) and the
   * highest seq the request covered. Seqs up to `through` that are still
   * missing are given up on and counted in `lost`: history no longer has
   * them. It returns the deliverable messages in order and, if held messages
   * still leave a hole above `through`, the next gap.
   *
   * @param {{seq: number}[]} messages
   * @param {number} through
   * @returns {{deliver: object[], lost: number, gap: {after: number, before: number} | null}}
   */
  fill(messages, through) {
    for (const m of messages) {
      if (Number.isSafeInteger(m.seq) && m.seq > this.last && m.seq <= through && !this.held.has(m.seq)) {
        this.held.set(m.seq, m);
      }
    }
    this.filling = false;
    const deliver = this.drain();
    let lost = 0;
    while (this.last < through) {
      // The lowest seq still missing: skip to the next held one, or to through.
      let next = through + 1;
      for (const s of this.held.keys()) if (s < next) next = s;
      next = Math.min(next, through + 1);
      lost += next - 1 - this.last;
      this.last = next - 1;
      deliver.push(...this.drain());
    }
    return { deliver, lost, gap: this.gap() };
  }

  /** drain takes consecutive held messages after last. */
  drain() {
    const out = [];
    while (this.held.has(this.last + 1)) {
      this.last += 1;
      out.push(this.held.get(this.last));
      this.held.delete(this.last);
    }
    return out;
  }

  /** gap reports the hole below the lowest held message and starts a fill. */
  gap() {
    if (this.held.size === 0) return null;
    let lowest = Infinity;
    for (const s of this.held.keys()) if (s < lowest) lowest = s;
    this.filling = true;
    return { after: this.last, before: lowest };
  }

  /** reset forgets held messages and any pending fill, keeping epoch and last:
   * called when the connection drops, since a rejoin recovers from last. */
  reset() {
    this.held.clear();
    this.filling = false;
  }
}
