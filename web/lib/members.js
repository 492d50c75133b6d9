// Members: one room's member list, kept from joined, member events and
// presence pages as docs/protocol.md ("Presence and member events") says.

/** Largest room whose member changes the server announces (protocol v1). */
export const MEMBER_EVENTS_MAX = 1000;

/** Largest presence page the server answers (protocol v1). */
export const MAX_PRESENCE_PAGE = 1000;

/**
 * MemberList is a room's member list and count. In a room of at most
 * MEMBER_EVENTS_MAX members it becomes complete (the whole room, kept up to
 * date by member events) once the pages after joined's first are merged; in
 * a larger room the server sends no member events, so the list is the
 * pages read so far and the count the last one the server gave.
 *
 * Paging is driven from outside: next() says which page to ask for;
 * asking() marks it in flight, so that the member events arriving meanwhile
 * are applied again after the page (the page may have been read before or
 * after them); page() merges the answer.
 */
export class MemberList {
  constructor() {
    /** @type {Set<string>} */
    this.users = new Set();
    this.count = 0;
    /** the list is the whole room, kept up to date by member events */
    this.complete = true;
    /** the room is above MEMBER_EVENTS_MAX: no member events come */
    this.large = false;
    /** where the next page starts (the last user listed), or null */
    this.cursor = null;
    /** @type {object[]|null} member events received while a page is in flight */
    this.pending = null;
  }

  /** fromJoined starts over from a joined answer. An old server's joined
   * has no member_count: its members are the whole room. */
  fromJoined(f) {
    const members = f.members ?? [];
    this.users = new Set(members);
    this.count = f.member_count ?? members.length;
    this.large = this.count > MEMBER_EVENTS_MAX;
    this.cursor = f.members_next ?? null;
    this.complete = this.cursor === null;
    this.pending = null;
  }

  /** onEvent applies a member_joined or member_left. It returns true when
   * the room just became small again after being large: the list missed the
   * changes in between and must be read again (restart()). */
  onEvent(f) {
    if (f.type === 'member_joined') this.users.add(f.user);
    else this.users.delete(f.user);
    if (this.pending) this.pending.push(f);
    if (f.member_count === undefined) {
      this.count = this.users.size; // an old server: always complete
      return false;
    }
    this.count = f.member_count;
    const wasLarge = this.large;
    this.large = this.count > MEMBER_EVENTS_MAX;
    if (this.large && !wasLarge) {
      // No more events: the list stays as it is, no longer complete.
      this.complete = false;
      this.cursor = null;
    }
    return wasLarge && !this.large;
  }

  /** restart forgets the list, to read it again from the first page. */
  restart() {
    this.users = new Set();
    this.cursor = '';
    this.complete = false;
    this.pending = null;
  }

  /** next returns the after of the page to ask for while building a
   * complete list, or null when there is none to ask for. */
  next() {
    if (this.complete || this.large || this.pending) return null;
    return this.cursor;
  }

  /** asking marks a page request as sent. */
  asking() {
    this.pending = [];
  }

  /** page merges a presence answer, then applies again the events that
   * arrived while it was asked for. */
  page(f) {
    for (const u of f.members ?? []) this.users.add(u);
    const again = this.pending ?? [];
    this.pending = null;
    if (f.member_count !== undefined) this.count = f.member_count;
    for (const e of again) {
      if (e.type === 'member_joined') this.users.add(e.user);
      else this.users.delete(e.user);
    }
    this.large = this.count > MEMBER_EVENTS_MAX;
    this.cursor = f.members_next ?? null;
    if (this.cursor === null && !this.large) {
      this.complete = true;
      this.count = this.users.size;
    }
  }

  /** abandon gives up the page in flight (the request failed): the list
   * stays partial until the next joined. */
  abandon() {
    this.pending = null;
    this.cursor = null;
  }

  /** list returns the members known, sorted. */
  list() {
    return [...this.users].sort();
  }
}
