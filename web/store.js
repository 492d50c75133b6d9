// The demo chat's saved session: what a reload brings back. Pure functions,
// no DOM and no storage access, so that node tests can check them.
//
// What comes back from localStorage is user-controlled input (anyone with
// the devtools, or another script of the origin, can write it): parseSession
// keeps only well-formed values and drops the rest, and the page still only
// ever puts text into the DOM through textContent.

/** localStorage key of the saved session. */
export const SESSION_KEY = 'switchboard:session';

/** Format version; a different one is ignored. */
export const SESSION_VERSION = 1;

/** Byte budget of the saved session (UTF-16 code units, as localStorage
 * counts them): far below the browser's 5 MB per origin. Messages are
 * thinned out to fit it (serializeSession). */
export const MAX_SESSION_CHARS = 256 * 1024;

/** Most conversations kept of each kind, and most messages per conversation. */
export const MAX_ROOMS = 50;
export const MAX_DMS = 50;
/** MAX_UNREAD caps a saved DM's unread count. */
export const MAX_UNREAD = 9999;
export const MAX_MESSAGES = 50;
/** Longest message text kept (the server's frame limit is 64 KiB). */
export const MAX_TEXT = 65536;

const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const EPOCH_RE = /^[\x21-\x7e]{1,64}$/;
const ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * @typedef {object} Session
 * @property {string} name  the user name signed in with
 * @property {SavedRoom[]} rooms  in sidebar order
 * @property {SavedDM[]} dms
 * @property {{room: string|null, dm: string|null}} open  the room shown and the
 *           DM open beside it (on a phone, over it)
 * @property {{id: string, room: string, text: string, ts: number}[]} pending
 *           room sends not yet acknowledged: resent with the same id, which
 *           the server de-duplicates
 *
 * @typedef {object} SavedRoom
 * @property {string} name
 * @property {{since: number, epoch: string}|null} position  where its stream stood
 * @property {boolean} hasOlder  history holds messages before msgs
 * @property {{seq: number, epoch: string, from: string, text: string, ts: number, edited?: true, deleted?: true}[]} msgs  oldest first
 *
 * @typedef {object} SavedDM
 * @property {string} peer
 * @property {{from: string, text: string, ts: number}[]} msgs  oldest first
 * @property {number} unread  messages from peer not yet seen (the server
 *           keeps no DM history, so the page keeps this count)
 */

/**
 * parseSession reads a saved session. It returns null for anything but a
 * well-formed session of this version with a valid user name; within one it
 * drops, one by one, the rooms, DMs, messages and pending sends that are not
 * well-formed, and caps each list.
 * @param {string|null} text
 * @returns {Session|null}
 */
export function parseSession(text) {
  let v;
  try {
    v = JSON.parse(text ?? '');
  } catch {
    return null;
  }
  if (!isObject(v) || v.v !== SESSION_VERSION || !isName(v.name)) return null;
  const rooms = uniqueBy(list(v.rooms).map(parseRoom).filter(Boolean), (r) => r.name).slice(0, MAX_ROOMS);
  const dms = uniqueBy(list(v.dms).map((d) => parseDM(d, v.name)).filter(Boolean), (d) => d.peer).slice(0, MAX_DMS);
  const roomNames = new Set(rooms.map((r) => r.name));
  const pending = list(v.pending)
    .filter((p) => isObject(p) && ID_RE.test(str(p.id)) && roomNames.has(p.room) && isText(p.text) && isTime(p.ts))
    .map(({ id, room, text, ts }) => ({ id, room, text, ts }))
    .slice(0, MAX_MESSAGES);
  const o = isObject(v.open) ? v.open : {};
  const open = {
    room: roomNames.has(o.room) ? o.room : null,
    dm: dms.some((d) => d.peer === o.dm) ? o.dm : null,
  };
  return { name: v.name, rooms, dms, open, pending };
}

function parseRoom(r) {
  if (!isObject(r) || !ROOM_RE.test(str(r.name))) return null;
  const p = r.position;
  const position = isObject(p) && isSeq(p.since, 0) && EPOCH_RE.test(str(p.epoch)) ? { since: p.since, epoch: p.epoch } : null;
  const msgs = list(r.msgs)
    .filter((m) => isObject(m) && isSeq(m.seq, 1) && EPOCH_RE.test(str(m.epoch)) && isName(m.from) && isText(m.text) && isTime(m.ts))
    .map(({ seq, epoch, from, text, ts, edited, deleted }) => ({
      seq, epoch, from, text: deleted === true ? '' : text, ts,
      ...(edited === true && deleted !== true && { edited: true }), ...(deleted === true && { deleted: true }),
    }))
    .slice(-MAX_MESSAGES);
  return { name: r.name, position, hasOlder: r.hasOlder === true, msgs };
}

function parseDM(d, me) {
  if (!isObject(d) || !isName(d.peer) || d.peer === me) return null;
  const msgs = list(d.msgs)
    .filter((m) => isObject(m) && (m.from === me || m.from === d.peer) && isText(m.text) && isTime(m.ts))
    .map(({ from, text, ts }) => ({ from, text, ts }))
    .slice(-MAX_MESSAGES);
  const unread = Number.isSafeInteger(d.unread) && d.unread > 0 ? Math.min(d.unread, MAX_UNREAD) : 0;
  return { peer: d.peer, msgs, unread };
}

/**
 * serializeSession writes a session as JSON of at most maxChars characters:
 * when the messages do not fit it keeps fewer of each conversation's newest
 * (50, 20, 5), and in the end none, with the rooms' positions dropped too
 * so that a reload loads their history afresh instead of resuming after
 * messages it no longer has. It returns null if even that does not fit.
 * @param {Session} s
 * @param {number} [maxChars]
 * @returns {string|null}
 */
export function serializeSession(s, maxChars = MAX_SESSION_CHARS) {
  for (const keep of [MAX_MESSAGES, 20, 5, 0]) {
    const text = JSON.stringify({
      v: SESSION_VERSION,
      name: s.name,
      rooms: s.rooms.slice(0, MAX_ROOMS).map((r) => ({
        name: r.name,
        position: keep > 0 ? r.position : null,
        hasOlder: r.hasOlder || r.msgs.length > keep,
        msgs: keep > 0 ? r.msgs.slice(-keep) : [],
      })),
      dms: s.dms.slice(0, MAX_DMS).map((d) => ({ peer: d.peer, unread: d.unread ?? 0, msgs: keep > 0 ? d.msgs.slice(-keep) : [] })),
      open: s.open,
      pending: keep > 0 ? s.pending.slice(0, MAX_MESSAGES) : [],
    });
    if (text.length <= maxChars) return text;
  }
  return null;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v) => (Array.isArray(v) ? v : []);
const str = (v) => (typeof v === 'string' ? v : '');
const isName = (v) => typeof v === 'string' && USER_RE.test(v);
const isSeq = (v, min) => Number.isSafeInteger(v) && v >= min;
const isText = (v) => typeof v === 'string' && v.length <= MAX_TEXT;
const isTime = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function uniqueBy(items, key) {
  const seen = new Set();
  return items.filter((it) => !seen.has(key(it)) && seen.add(key(it)));
}
