// A room as the demo chat shows it: its messages and system lines in
// order, with the bookkeeping that keeps each message once. Pure functions
// over a RoomView object; no DOM, no client.

import { messageText } from './view.js';

/**
 * newRoomView returns an empty RoomView: items are the messages and system
 * lines in display order; byKey maps "epoch:seq" → item; byId maps a
 * request id → own item; epochs are the epochs in the order seen (an
 * item's epochIdx indexes it).
 */
export function newRoomView(name) {
  return {
    name, items: [], byKey: new Map(), byId: new Map(), epochs: [], unread: 0, members: [], count: 0, typing: new Map(),
    oldest: 0, hasOlder: false, joining: false, firstPage: null, joinedAt: null,
    changes: new Map(), mod: { muted: false, until: 0, frozen: false },
  };
}

export function epochIndex(r, epoch) {
  let i = r.epochs.indexOf(epoch);
  if (i < 0) i = r.epochs.push(epoch) - 1;
  return i;
}

export function sortItems(r) {
  r.items.sort((a, b) => a.epochIdx - b.epochIdx || a.seq - b.seq);
}

/** addMessage puts a room message in place; an echo of our own send turns
 * its pending item into the real one. It returns whether the item is new. */
export function addMessage(r, m, epoch, id) {
  const key = `${epoch}:${m.seq}`;
  const known = r.byKey.get(key) ?? (id && r.byId.get(id));
  const fields = { key, seq: m.seq, epochIdx: epochIndex(r, epoch), ts: m.ts, pending: false, failed: false };
  if (known) {
    Object.assign(known, fields);
    r.byKey.set(key, known);
    sortItems(r);
    return false;
  }
  const it = { kind: 'msg', from: m.from, text: messageText(m.data), ...fields };
  // A change that came first (a newer history page, say) applies now.
  const change = r.changes.get(key);
  if (change) applyTo(it, change);
  r.items.push(it);
  r.byKey.set(key, it);
  sortItems(r);
  return true;
}

/**
 * addEntry puts an entry of a room's stream in place: a message (as
 * addMessage), or a message_edited / message_deleted frame, which is never
 * shown itself but changes the message it targets: now if shown, or when it
 * arrives (history pages load newest first). A change older than one
 * already applied is ignored, and a deleted message stays deleted. It
 * returns whether a new message is shown.
 */
export function addEntry(r, f, epoch, id) {
  if (f.type === 'message_edited' || f.type === 'message_deleted') {
    applyChange(r, f, epoch);
    return false;
  }
  return addMessage(r, f, epoch, id);
}

/** applyChange records an edit or delete of the message epoch:f.target and
 * applies it to that message if it is shown. It returns the changed item. */
export function applyChange(r, f, epoch) {
  const key = `${epoch}:${f.target}`;
  const deleted = f.type === 'message_deleted';
  const prev = r.changes.get(key);
  let change = prev;
  if (!prev || (!prev.deleted && (deleted || f.seq > prev.seq))) {
    change = deleted ? { seq: f.seq, deleted: true } : { seq: f.seq, text: messageText(f.data) };
    r.changes.set(key, change);
  }
  const it = r.byKey.get(key);
  if (it) applyTo(it, change);
  return it ?? null;
}

function applyTo(it, change) {
  if (change.deleted) Object.assign(it, { deleted: true, edited: false, text: '' });
  else if (!it.deleted) Object.assign(it, { edited: true, text: change.text });
}

/** addSystem adds a line such as "bob joined" after the room's newest
 * message, or after the join point if history is still loading. */
export function addSystem(r, text, tone = '', now = Date.now()) {
  let at = r.items.findLast((it) => it.kind === 'msg' && !it.pending && !it.failed) ?? { epochIdx: 0, seq: 0 };
  const j = r.joinedAt;
  if (j && (j.epochIdx > at.epochIdx || (j.epochIdx === at.epochIdx && j.seq > at.seq))) at = j;
  r.items.push({ kind: 'system', text, tone, ts: now, epochIdx: at.epochIdx, seq: at.seq + 0.5 });
  sortItems(r);
}

/** savedRoom is a room as store.js saves it. Its stream position is kept
 * only once its first page of history is shown: before that, a resumed
 * join would skip what came before. */
export function savedRoom(r, position) {
  return {
    name: r.name,
    position: (r.firstPage === 'done' && position) || null,
    hasOlder: r.hasOlder,
    msgs: r.items
      .filter((it) => it.kind === 'msg' && !it.pending && !it.failed && Number.isFinite(it.epochIdx))
      .map((it) => ({
        seq: it.seq, epoch: r.epochs[it.epochIdx], from: it.from, text: it.text, ts: it.ts,
        ...(it.edited && { edited: true }), ...(it.deleted && { deleted: true }),
      })),
  };
}

/** pendingSends are a room's own messages not yet acknowledged. */
export function pendingSends(r) {
  return r.items.filter((it) => it.pending && it.id).map((it) => ({ id: it.id, room: r.name, text: it.text, ts: it.ts }));
}

/**
 * moderationNotice is the line above the composer of a room where this
 * user may not write (mod = {muted, until, frozen}, as the client's
 * moderation(room)), or '' where it may. clock formats a time of day.
 */
export function moderationNotice(room, mod, clock, now = Date.now()) {
  const muted = mod.muted && (mod.until === 0 || mod.until > now);
  if (muted) return mod.until ? `You are muted in #${room} until ${clock(mod.until)}` : `You are muted in #${room}`;
  if (mod.frozen) return 'This room is frozen';
  return '';
}
