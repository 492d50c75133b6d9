// The demo chat: a thin UI over switchboard.js. User text only ever reaches
// the DOM through textContent (see view.js).

import { connect, RESEND_WINDOW_MS } from './switchboard.js';
import { addEntry, addMessage, addSystem, applyChange, epochIndex, moderationNotice, newRoomView, pendingSends, savedRoom, sortItems } from './conversation.js';
import { bannerText, isDown, retryLabel, statusText } from './status.js';
import { parseSession, serializeSession, SESSION_KEY } from './store.js';
import { $, autoGrow, avatar, clock, el, messageText, renderItems, stickToBottom, typingText } from './view.js';

const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const PAGE = 50;
const TYPING_MS = 4000;

const state = {
  client: null,
  me: '',
  /** @type {Map<string, RoomView>} */
  rooms: new Map(),
  /** @type {Map<string, DMView>} */
  dms: new Map(),
  current: null, // room shown
  dmPeer: null, // DM pane open with
  status: { state: 'connecting' },
  tick: null,
  remember: false, // save the session for a reload (name sign-ins only)
  down: false, // the connection was lost and is not back yet
  editing: null, // {room, key, text}: the own message being edited
};
let pendingOrder = 0;

// ---- sign-in ----

function initLogin() {
  const params = new URLSearchParams(location.search);
  $('login-name').value = params.get('name') ?? '';
  if (params.get('room')) $('login-room').value = params.get('room');
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('login-name').value.trim();
    const token = $('token-box').open ? $('login-token').value.trim() : '';
    const room = $('login-room').value.trim() || 'lobby';
    const problem = !token && !USER_RE.test(name) ? 'Names are 1–32 letters, digits, _ . or -.'
      : !ROOM_RE.test(room) ? 'Room names are 1–64 letters, digits, _ . : or -.' : '';
    $('login-error').textContent = problem;
    if (problem) return;
    start({ name, token, room });
  });
}

/** resume signs in again with the session saved before a reload, unless
 * the address asks for another name. */
function resume() {
  let saved = null;
  try {
    saved = parseSession(localStorage.getItem(SESSION_KEY));
  } catch {
    // storage disabled: nothing to resume
  }
  const asked = new URLSearchParams(location.search).get('name');
  if (saved && (!asked || asked === saved.name)) start({ name: saved.name }, saved);
}

function start({ name, token, room }, saved = null) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const c = connect({ url, name: token ? undefined : name, token: token || undefined });
  state.client = c;
  state.me = token ? '' : name; // a token's user is known from the welcome
  // A token is not written to storage: a reload after a token sign-in
  // signs out.
  state.remember = !token;
  wire(c);
  $('login').hidden = true;
  $('app').hidden = false;
  renderMe();
  if (saved) restore(saved);
  else openRoom(room);
  scheduleSave();
  if (!state.dmPeer) $('compose').focus();
}

/** restore brings back the saved rooms, DMs, open conversation and pending
 * sends. Rooms with a saved position rejoin from it, so the server replays
 * only what was missed; the others load their history as a new join does. */
function restore(saved) {
  for (const s of saved.rooms) {
    const r = roomView(s.name);
    for (const m of s.msgs) {
      addMessage(r, { seq: m.seq, from: m.from, ts: m.ts, data: m.text }, m.epoch);
      if (m.edited || m.deleted) Object.assign(r.byKey.get(`${m.epoch}:${m.seq}`), { edited: !!m.edited, deleted: !!m.deleted });
    }
    const here = s.position && s.msgs.filter((m) => m.epoch === s.position.epoch);
    if (s.position) r.firstPage = 'done';
    r.hasOlder = s.hasOlder;
    r.oldest = here?.[0]?.seq ?? 0;
    r.joining = true;
    state.client.join(s.name, s.position ?? {}).catch((err) => system(s.name, `Could not join: ${err.message}`, 'warn'));
  }
  for (const s of saved.dms) {
    const d = dmView(s.peer);
    d.items = s.msgs.map((m) => ({ kind: 'msg', key: `dm-${++pendingOrder}`, ...m }));
    d.unread = s.unread; // DMs are not stored by the server: the page keeps their count
  }
  for (const p of saved.pending) {
    const r = state.rooms.get(p.room);
    const it = { kind: 'msg', key: `id:${p.id}`, id: p.id, from: state.me, text: p.text, ts: p.ts };
    r.items.push(it);
    // The server de-duplicates a resend for 5 minutes; an older one might
    // be delivered twice, so it waits for the user to retry it.
    if (Date.now() - p.ts < RESEND_WINDOW_MS) queueSend(r, p.text, it);
    else Object.assign(it, { failed: true, epochIdx: Infinity, seq: ++pendingOrder, note: 'Not sent before the reload · ' });
    r.byId.set(p.id, it);
    sortItems(r);
  }
  state.current = saved.open.room ?? state.rooms.keys().next().value ?? null;
  renderAll(true);
  if (saved.open.dm) openDM(saved.open.dm);
}

function signOut() {
  const c = state.client;
  state.client = null; // its last events (offline, failed sends) are not news
  forget();
  c?.close();
  for (const r of state.rooms.values()) for (const t of r.typing.values()) clearTimeout(t);
  const name = state.me;
  Object.assign(state, { client: null, rooms: new Map(), dms: new Map(), current: null, dmPeer: null, down: false });
  clearInterval(state.tick);
  document.body.classList.remove('disconnected', 'side-open');
  navOpen(false);
  $('app').hidden = true;
  $('login').hidden = false;
  if (name) $('login-name').value = name;
  $('login-name').focus();
  document.title = 'Switchboard';
}

// ---- the saved session ----

let saveTimer = null;

/** scheduleSave saves the session soon: changes come in bursts. */
function scheduleSave() {
  if (state.remember && !saveTimer) saveTimer = setTimeout(saveNow, 300);
}

function saveNow() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!state.remember || !state.client) return;
  const text = serializeSession(snapshot());
  try {
    if (text) localStorage.setItem(SESSION_KEY, text);
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Storage full or disabled: a reload signs out, nothing worse.
  }
}

/** forget drops the saved session (sign out). */
function forget() {
  state.remember = false;
  clearTimeout(saveTimer);
  saveTimer = null;
  try {
    localStorage.removeItem(SESSION_KEY);
    localStorage.removeItem('switchboard:name'); // kept by earlier versions
  } catch {
    // storage disabled
  }
}

/** snapshot is the session as store.js saves it. */
function snapshot() {
  const rooms = [...state.rooms.values()].map((r) => savedRoom(r, state.client.position(r.name)));
  const pending = [...state.rooms.values()].flatMap(pendingSends);
  const dms = [...state.dms.values()].map((d) => ({
    peer: d.peer,
    unread: d.unread,
    msgs: d.items.filter((it) => !it.pending && !it.failed).map((it) => ({ from: it.from, text: it.text, ts: it.ts })),
  }));
  const open = { room: state.current, dm: state.dmPeer };
  return { name: state.me, rooms, dms, open, pending };
}

// ---- client events ----

function wire(c) {
  c.on('status', (s) => {
    if (state.client !== c) return; // signed out
    state.status = s;
    if (s.state === 'connected') {
      state.me = s.user;
      renderMe();
    }
    const down = isDown(s);
    if (down !== state.down) {
      state.down = down;
      announce(down ? 'Disconnected. Reconnecting; messages you send now go out when the connection is back.' : 'Reconnected.');
      // Pending notes, stale presence.
      renderRoom();
      renderMembers();
      renderDM();
    }
    renderStatus();
  });
  c.on('message', (m, meta) => onMessage(m, meta));
  c.on('message_edited', (f, meta) => onChange(f, meta));
  c.on('message_deleted', (f, meta) => onChange(f, meta));
  c.on('dm', (m, meta) => onDM(m, meta));
  c.on('members', ({ room, members, count }) => {
    const r = state.rooms.get(room);
    if (!r) return;
    r.members = members;
    r.count = count ?? members.length;
    if (room === state.current) renderMembers();
  });
  c.on('member_joined', ({ room, user }) => system(room, `${user} joined`, 'quiet'));
  c.on('member_left', ({ room, user }) => {
    stopTyping(room, user);
    system(room, `${user} left`, 'quiet');
  });
  c.on('typing', ({ room, user }) => onTyping(room, user));
  c.on('muted', ({ room, until }) => setModeration(room, { muted: true, until }));
  c.on('unmuted', ({ room }) => setModeration(room, { muted: false, until: 0 }));
  c.on('room_updated', ({ room, frozen }) => setModeration(room, { frozen }));
  c.on('joined', (j) => {
    loadFirstPage(j);
    const r = state.rooms.get(j.room);
    if (r) countUnread(r);
    if (r) markRead(r);
  });
  c.on('unread', ({ room }) => {
    const r = state.rooms.get(room);
    if (r) countUnread(r);
  });
  c.on('read', ({ room }) => room === state.current && renderRoom());
  c.on('recovered', ({ room, count }) => {
    if (count > 0) system(room, `${plural(count, 'message')} recovered after reconnect`, 'good');
  });
  c.on('resync', ({ room, count, lost, epochChanged }) => {
    if (epochChanged) system(room, 'The server lost this room’s history while you were away', 'warn');
    if (count > 0) system(room, `${plural(count, 'message')} recovered after reconnect`, 'good');
    if (lost > 0) system(room, `${plural(lost, 'message')} could not be recovered`, 'warn');
  });
  c.on('gap', ({ room, lost }) => system(room, `${plural(lost, 'message')} could not be loaded`, 'warn'));
  c.on('error', (err) => {
    if (err.room && state.rooms.has(err.room)) {
      system(err.room, `Could not rejoin: ${err.message}`, 'warn');
      return;
    }
    if (state.current) system(state.current, `Server: ${err.message}`, 'warn');
  });
}

function onMessage(m, meta) {
  const r = state.rooms.get(m.room);
  if (!r) return;
  const added = addMessage(r, m, meta.epoch, meta.id);
  stopTyping(m.room, m.from);
  if (added && m.from !== state.me) countUnread(r);
  markRead(r);
  if (added && m.from !== state.me && m.room === state.current && meta.source === 'live') {
    announce(`${m.from}: ${messageText(m.data)}`);
  }
  if (m.room === state.current) renderRoom();
  scheduleSave();
}

/** onChange applies an edit or delete to the message it targets. */
function onChange(f, meta) {
  const r = state.rooms.get(f.room);
  if (!r) return;
  const it = applyChange(r, f, meta.epoch);
  markRead(r);
  if (it?.deleted && state.editing?.key === it.key && state.editing.room === r.name) state.editing = null;
  if (it && f.room === state.current) renderRoom();
  if (it) scheduleSave();
}

function onDM(m, meta) {
  const peer = m.from === state.me ? m.to : m.from;
  const d = dmView(peer);
  const mine = meta.id && d.byId.get(meta.id);
  if (mine) {
    Object.assign(mine, { pending: false, failed: false, ts: m.ts });
  } else {
    d.items.push({ kind: 'msg', key: `dm-${++pendingOrder}`, from: m.from, text: messageText(m.data), ts: m.ts });
    if (m.from !== state.me && (state.dmPeer !== peer || document.hidden)) d.unread++;
    if (m.from !== state.me) announce(`Direct message from ${m.from}: ${messageText(m.data)}`);
  }
  renderDMList();
  renderTitle();
  if (state.dmPeer === peer) renderDM();
  scheduleSave();
}

function onTyping(room, user) {
  const r = state.rooms.get(room);
  if (!r) return;
  clearTimeout(r.typing.get(user));
  r.typing.set(user, setTimeout(() => stopTyping(room, user), TYPING_MS));
  if (room === state.current) renderTyping();
}

function stopTyping(room, user) {
  const r = state.rooms.get(room);
  if (!r?.typing.has(user)) return;
  clearTimeout(r.typing.get(user));
  r.typing.delete(user);
  if (room === state.current) renderTyping();
}

// ---- rooms ----

function roomView(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = newRoomView(name);
    state.rooms.set(name, r);
  }
  return r;
}

/** system adds a line such as "bob joined" to a room. */
function system(room, text, tone = '') {
  const r = state.rooms.get(room);
  if (!r) return;
  addSystem(r, text, tone);
  if (room === state.current) renderRoom();
}

function openRoom(name) {
  const r = roomView(name);
  state.current = name;
  r.unread = 0;
  markRead(r);
  navOpen(false);
  renderAll(true);
  scheduleSave();
  if (r.joining) return;
  r.joining = true;
  // The first page of history loads on the joined event (loadFirstPage).
  state.client.join(name).catch((err) => system(name, `Could not join: ${err.message}`, 'warn'));
}

/** loadFirstPage shows what was said before we joined, once per room: on
 * the first joined event, or a later one if the connection dropped first. */
function loadFirstPage({ room, seq, epoch }) {
  const r = state.rooms.get(room);
  if (!r) return;
  r.joinedAt = { epochIdx: epochIndex(r, epoch), seq }; // system lines go after this
  if (r.firstPage) return;
  r.firstPage = 'loading';
  state.client
    .history(room, { before: seq + 1, limit: PAGE })
    .then((page) => {
      r.firstPage = 'done';
      for (const m of page.messages) addEntry(r, m, page.epoch);
      r.hasOlder = page.messages.length === PAGE;
      if (page.messages.length > 0) r.oldest = page.messages[0].seq;
      if (r.name === state.current) renderRoom(true);
      scheduleSave();
      markRead(r);
    })
    .catch(() => (r.firstPage = null)); // retried on the next joined
}

async function loadOlder() {
  const r = state.rooms.get(state.current);
  if (!r?.oldest) return;
  const scroller = $('scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const page = await state.client.history(r.name, { before: r.oldest, limit: PAGE });
  for (const m of page.messages) addEntry(r, m, page.epoch);
  r.hasOlder = page.messages.length === PAGE;
  if (page.messages.length > 0) r.oldest = page.messages[0].seq;
  renderRoom();
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
}

function leaveRoom() {
  const name = state.current;
  if (!name) return;
  state.client.leave(name);
  state.rooms.delete(name);
  state.current = state.rooms.keys().next().value ?? null;
  renderAll(true);
  scheduleSave();
}

function sendMessage(text) {
  const r = state.rooms.get(state.current);
  if (!r) return;
  queueSend(r, text);
}

/** queueSend shows the message at once as pending and sends it; a retry
 * reuses the id, so the server delivers it at most once. */
function queueSend(r, text, retry) {
  const p = state.client.send(r.name, { text }, retry ? { id: retry.id } : {});
  const it = retry ?? { kind: 'msg', key: `id:${p.id}`, id: p.id, from: state.me, text, ts: Date.now() };
  Object.assign(it, { pending: true, failed: false, epochIdx: Infinity, seq: ++pendingOrder });
  if (!retry) r.items.push(it);
  r.byId.set(p.id, it);
  sortItems(r);
  renderRoom(true);
  p.then(({ seq, epoch }) => {
    if (!it.pending) return; // the echo came first
    const key = `${epoch}:${seq}`;
    const shown = r.byKey.get(key);
    if (shown && shown !== it) {
      // Shown already: a retry of a send that had in fact gone through.
      r.items.splice(r.items.indexOf(it), 1);
      return;
    }
    Object.assign(it, { pending: false, key, seq, epochIdx: epochIndex(r, epoch) });
    r.byKey.set(key, it);
    sortItems(r);
  }).catch((err) => {
    refusal(r.name, err);
    Object.assign(it, { pending: false, failed: true, note: `Not delivered (${err.code}) · ` });
  }).finally(() => {
    if (r.name === state.current) renderRoom();
    scheduleSave();
  });
  scheduleSave();
}

// ---- read positions ----

const viewing = (r) => r.name === state.current && !document.hidden;

/** countUnread shows a room's unread count as the server keeps it (so a
 * reload shows it from the joined answer), except in the room being read. */
function countUnread(r) {
  const n = viewing(r) ? 0 : state.client.unread(r.name);
  if (n === r.unread) return;
  r.unread = n;
  renderRoomList();
  renderTitle();
}

/** markRead tells the server the open, visible room is read up to its
 * newest entry. */
function markRead(r) {
  if (!r || !viewing(r) || !state.client || r.firstPage !== 'done') return;
  const pos = state.client.position(r.name);
  if (pos?.since > state.client.readSeq(r.name)) state.client.read(r.name, pos.since);
}

/** seenBy names who read the room up to this user's last message. */
function seenBy(r) {
  const last = r.items.findLast((it) => it.kind === 'msg' && it.from === state.me && !it.pending && !it.failed && Number.isFinite(it.epochIdx));
  if (!last) return null;
  const users = [...state.client.readers(r.name)].filter(([u, seq]) => u !== state.me && seq >= last.seq).map(([u]) => u).sort();
  return users.length > 0 ? { key: last.key, text: `Seen by ${users.join(', ')}` } : null;
}

// ---- moderation ----

/** setModeration records what the server said of this user's rights in a
 * room (an event, or a write refused with muted or frozen). */
function setModeration(room, change) {
  const r = state.rooms.get(room);
  if (!r) return;
  Object.assign(r.mod, change);
  const { until } = r.mod;
  if (r.mod.muted && until > Date.now()) {
    // A timed mute ends without an event.
    clearTimeout(r.modTimer);
    r.modTimer = setTimeout(() => r.mod.until === until && setModeration(room, { muted: false, until: 0 }), Math.min(until - Date.now() + 50, 2 ** 31 - 1));
  }
  if (room === state.current) renderNotice();
}

/** refusal updates the moderation state from a write's error. */
function refusal(room, err) {
  if (err.code === 'muted') setModeration(room, { muted: true, until: err.until ?? 0 });
  if (err.code === 'frozen') setModeration(room, { frozen: true });
}

function renderNotice() {
  const r = state.rooms.get(state.current);
  const text = r ? moderationNotice(r.name, r.mod, clock) : '';
  $('room-notice').textContent = text;
  $('room-notice').hidden = !text;
  $('compose').disabled = !!text;
  $('composer').querySelector('button[type="submit"]').disabled = !!text;
  $('compose').placeholder = !r ? '' : text ? 'You cannot write here now' : `Message #${r.name}`;
}

// ---- editing and deleting own messages ----

function onMessageAction(e) {
  const b = e.target.closest('button[data-action]');
  const r = state.rooms.get(state.current);
  const it = b && r?.byKey.get(b.closest('li')?.dataset.key);
  if (!it) return;
  const action = b.dataset.action;
  if (action === 'edit') {
    state.editing = { room: r.name, key: it.key, text: it.text, fresh: true };
    renderRoom();
  } else if (action === 'cancel-edit') {
    cancelEdit();
  } else if (action === 'delete') {
    state.client.delete(r.name, it.seq).catch((err) => {
      refusal(r.name, err);
      system(r.name, `Could not delete the message: ${changeError(err)}`, 'warn');
    });
  }
}

function cancelEdit() {
  const key = state.editing?.key;
  state.editing = null;
  renderRoom();
  $('messages').querySelector(`li[data-key="${CSS.escape(key ?? '')}"] button[data-action="edit"]`)?.focus();
}

/** saveEdit sends the edited text; the message shows it once the server's
 * message_edited comes back. */
function saveEdit() {
  const ed = state.editing;
  const r = ed && state.rooms.get(ed.room);
  const it = r?.byKey.get(ed.key);
  state.editing = null;
  if (it && ed.text.trim() && ed.text.trim() !== it.text) {
    state.client.edit(r.name, it.seq, { text: ed.text.trim() }).catch((err) => {
      refusal(r.name, err);
      system(r.name, `Could not edit the message: ${changeError(err)}`, 'warn');
    });
  }
  renderRoom();
  $('compose').focus();
}

function changeError(err) {
  switch (err.code) {
    case 'not_found':
      return 'it is no longer in the room’s history (or was deleted)';
    case 'forbidden':
      return 'only its sender may change it';
    case 'muted':
      return 'you are muted in this room';
    case 'frozen':
      return 'the room is frozen';
    default:
      return err.message || err.code;
  }
}

// ---- direct messages ----

function dmView(peer) {
  let d = state.dms.get(peer);
  if (!d) {
    d = { peer, items: [], byId: new Map(), unread: 0 };
    state.dms.set(peer, d);
  }
  return d;
}

function openDM(peer) {
  if (peer === state.me) return;
  const d = dmView(peer);
  d.unread = 0;
  state.dmPeer = peer;
  document.body.classList.add('side-open');
  navOpen(false);
  renderDMList();
  renderDM(true);
  renderTitle();
  scheduleSave();
  $('dm-compose').focus();
}

function closeDM() {
  state.dmPeer = null;
  renderDM();
  document.body.classList.remove('side-open');
  scheduleSave();
}

function sendDM(text) {
  const d = dmView(state.dmPeer);
  const p = state.client.dm(d.peer, { text });
  const it = { kind: 'msg', key: `id:${p.id}`, from: state.me, text, ts: Date.now(), pending: true };
  d.items.push(it);
  d.byId.set(p.id, it);
  renderDM(true);
  p.then(() => (it.pending = false))
    .catch((err) => {
      const why = err.code === 'offline' ? `${d.peer} is offline · not delivered` : `Not delivered (${err.code})`;
      Object.assign(it, { pending: false, failed: true, note: why });
    })
    .finally(() => {
      if (state.dmPeer === d.peer) renderDM();
      scheduleSave();
    });
}

// ---- rendering ----

function renderAll(scrollDown) {
  renderRoomList();
  renderRoom(scrollDown);
  renderMembers();
  renderDMList();
  renderDM();
  renderTitle();
}

function renderMe() {
  $('me-name').textContent = state.me;
  avatar($('me-avatar'), state.me || '?');
}

function renderStatus() {
  const s = state.status;
  $('conn').dataset.state = s.state;
  $('conn-mini').dataset.state = s.state;
  const retry = retryLabel(s);
  const pill = s.state !== 'offline' ? 'Retry' : retry;
  $('conn-retry').hidden = !(s.state === 'reconnecting' || s.state === 'offline');
  $('conn-retry').textContent = pill;
  $('banner').hidden = !state.down;
  $('banner').dataset.state = s.state;
  $('banner-retry').textContent = retry;
  $('banner-retry').disabled = s.state === 'connecting';
  document.body.classList.toggle('disconnected', state.down);
  clearInterval(state.tick);
  const show = () => {
    const t = statusText(s);
    $('conn-text').textContent = t;
    // The phone header repeats it, except while all is well.
    $('conn-mini-text').textContent = s.state === 'connected' ? '' : t;
    $('banner-text').textContent = bannerText(s);
  };
  show();
  if (s.state === 'reconnecting') state.tick = setInterval(show, 250);
}

/** retrySoon skips the wait of a scheduled reconnect: the tab is visible
 * again, or the browser is back online, so the server may well be too. A
 * client that stopped (an expired token, say) stays stopped. */
function retrySoon() {
  if (state.status.state === 'reconnecting') state.client?.reconnectNow();
}

function retryClicked() {
  // An expired token cannot reconnect: sign in again instead.
  if (state.status.code === 4001) signOut();
  else state.client?.reconnectNow();
}

function renderRoomList() {
  const items = [...state.rooms.values()].map((r) =>
    el('li', {},
      el('button', {
        className: `nav-item${r.name === state.current ? ' active' : ''}`,
        attrs: { type: 'button', 'data-room': r.name, 'aria-current': r.name === state.current ? 'page' : 'false' },
        on: { click: () => openRoom(r.name) },
      },
      el('span', { className: 'hash', text: '#' }),
      el('span', { className: 'label', text: r.name }),
      r.unread > 0 ? el('span', { className: 'badge', text: String(r.unread), attrs: { 'aria-label': `${r.unread} unread` } }) : null)));
  $('room-list').replaceChildren(...items);
}

function renderRoom(scrollDown = false) {
  const r = state.rooms.get(state.current);
  $('room-name').textContent = r ? r.name : 'No room open';
  for (const id of ['leave-room', 'composer', 'open-people']) $(id).hidden = !r;
  document.querySelector('#room-title .hash').hidden = !r;
  $('empty-room').textContent = r ? 'No messages yet. Say hello!' : 'Join or create a room to start chatting.';
  $('empty-room').hidden = r?.items.some((it) => it.kind === 'msg') ?? false;
  $('load-older').hidden = !r?.hasOlder;
  const pendingText = state.down ? 'Pending · sent when the connection is back' : 'Sending…';
  renderNotice();
  const editing = r && state.editing?.room === r.name ? state.editing : null;
  const focused = editing && document.activeElement?.classList.contains('edit-text') ? document.activeElement : null;
  const caret = focused ? [focused.selectionStart, focused.selectionEnd] : null;
  stickToBottom($('scroller'), () => renderItems($('messages'), r ? r.items : [], state.me, { pendingText, editing, seenBy: r && seenBy(r) }), scrollDown);
  // The list is rebuilt: the editor keeps its focus and caret.
  const ta = editing && $('messages').querySelector('.edit-text');
  if (ta && (focused || editing.fresh)) {
    ta.focus();
    if (caret) ta.setSelectionRange(...caret);
    else ta.setSelectionRange(ta.value.length, ta.value.length);
    editing.fresh = false;
  }
  renderTyping();
}

function renderTyping() {
  const r = state.rooms.get(state.current);
  $('typing').textContent = r ? typingText([...r.typing.keys()]) : '';
}

function renderMembers() {
  const r = state.rooms.get(state.current);
  const members = r ? r.members : [];
  // In a large room the list is the members read so far: the count is the
  // room's, and the rest are paged in on demand.
  const count = r ? Math.max(r.count, members.length) : 0;
  // While disconnected the list is the last one known: say so.
  const label = `${count} online${state.down ? ', as last known' : ''}`;
  $('member-count').textContent = String(count);
  $('open-people').title = label;
  $('open-people').setAttribute('aria-label', `Members: ${label}`);
  $('people-count').textContent = `· ${count}${state.down ? ' · last known' : ''}`;
  const items = members.map((u) => {
    const me = u === state.me;
    return el('li', {},
      el('button', {
        className: 'member',
        attrs: { type: 'button', 'data-user': u, title: me ? 'You' : `Message ${u}`, ...(me && { disabled: '' }) },
        on: { click: () => openDM(u) },
      },
      avatar(el('span'), u),
      el('span', { className: 'label', text: u }),
      me ? el('span', { className: 'muted', text: 'you' }) : el('span', { className: 'dot ok', attrs: { role: 'img', 'aria-label': state.down ? 'online when last known' : 'online' } })));
  });
  if (count > members.length) {
    items.push(el('li', {},
      el('button', {
        className: 'member more',
        attrs: { type: 'button', 'data-more': '' },
        on: { click: () => state.client.moreMembers(state.current) },
      },
      el('span', { className: 'label muted', text: `${count - members.length} more…` }))));
  }
  $('member-list').replaceChildren(...items);
}

function renderDMList() {
  const items = [...state.dms.values()].map((d) =>
    el('li', {},
      el('button', {
        className: `nav-item${d.peer === state.dmPeer ? ' active' : ''}`,
        attrs: { type: 'button', 'data-peer': d.peer },
        on: { click: () => openDM(d.peer) },
      },
      avatar(el('span'), d.peer),
      el('span', { className: 'label', text: d.peer }),
      d.unread > 0 ? el('span', { className: 'badge', text: String(d.unread), attrs: { 'aria-label': `${d.unread} unread` } }) : null)));
  $('dm-list').replaceChildren(...items);
  $('dm-empty').hidden = items.length > 0;
}

function renderDM(scrollDown = false) {
  const open = state.dmPeer !== null;
  $('dm-pane').hidden = !open;
  $('people').hidden = open;
  if (!open) return;
  const d = dmView(state.dmPeer);
  $('dm-title').textContent = d.peer;
  avatar($('dm-avatar'), d.peer);
  $('dm-compose').placeholder = `Message ${d.peer}`;
  const pendingText = state.down ? 'Pending · sent when the connection is back' : 'Sending…';
  stickToBottom($('dm-scroller'), () => renderItems($('dm-messages'), d.items, state.me, { compact: true, pendingText }), scrollDown);
}

function renderTitle() {
  let n = 0;
  for (const r of state.rooms.values()) n += r.unread;
  for (const d of state.dms.values()) n += d.unread;
  document.title = n > 0 ? `(${n}) Switchboard` : 'Switchboard';
  // On a phone the lists hide behind the menu button: it carries the count.
  $('nav-badge').textContent = String(n);
  $('nav-badge').hidden = n === 0;
  $('open-nav').setAttribute('aria-label', n > 0 ? `Menu, ${n} unread` : 'Menu');
}

/** announce tells screen readers about a new message. */
function announce(text) {
  $('announcer').textContent = text;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** navOpen opens or closes the room list drawer of narrow screens; an
 * opened drawer takes the focus, so that keyboard users land in it. */
function navOpen(on) {
  const was = document.body.classList.contains('nav-open');
  document.body.classList.toggle('nav-open', on);
  $('open-nav').setAttribute('aria-expanded', String(on));
  if (on && !was) ($('sidebar').querySelector('.nav-item.active') ?? $('join-room')).focus();
}

// ---- input ----

/** composer wires a form: Enter sends, Shift+Enter is a new line. */
function composer(form, ta, onSend, onType) {
  const fit = autoGrow(ta);
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  ta.addEventListener('input', () => ta.value.trim() && onType?.());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text) return;
    ta.value = '';
    fit();
    onSend(text);
  });
}

function initApp() {
  composer($('composer'), $('compose'), sendMessage, () => state.current && state.client.typing(state.current));
  composer($('dm-composer'), $('dm-compose'), sendDM);
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('join-room');
    const name = input.value.trim();
    if (!ROOM_RE.test(name)) {
      input.setCustomValidity('1–64 letters, digits, _ . : or -');
      input.reportValidity();
      return;
    }
    input.value = '';
    openRoom(name);
    $('compose').focus();
  });
  $('join-room').addEventListener('input', (e) => e.target.setCustomValidity(''));
  $('messages').addEventListener('click', (e) => {
    const li = e.target.closest('li.failed');
    const r = state.rooms.get(state.current);
    const it = li && r && [...r.byId.values()].find((x) => x.key === li.dataset.key);
    if (it?.failed) queueSend(r, it.text, it);
  });
  $('messages').addEventListener('click', onMessageAction);
  $('messages').addEventListener('submit', (e) => {
    e.preventDefault();
    saveEdit();
  });
  $('messages').addEventListener('input', (e) => {
    if (e.target.classList.contains('edit-text') && state.editing) state.editing.text = e.target.value;
  });
  $('messages').addEventListener('keydown', (e) => {
    if (!e.target.classList.contains('edit-text')) return;
    if (e.key === 'Escape') {
      e.stopPropagation();
      cancelEdit();
    } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      saveEdit();
    }
  });
  $('load-older').addEventListener('click', loadOlder);
  $('leave-room').addEventListener('click', leaveRoom);
  $('sign-out').addEventListener('click', signOut);
  $('conn-retry').addEventListener('click', retryClicked);
  $('banner-retry').addEventListener('click', retryClicked);
  $('dm-close').addEventListener('click', closeDM);
  $('open-nav').addEventListener('click', () => navOpen(!document.body.classList.contains('nav-open')));
  $('open-people').addEventListener('click', () => document.body.classList.toggle('side-open'));
  for (const b of document.querySelectorAll('.close-side')) b.addEventListener('click', () => document.body.classList.remove('side-open'));
  $('scrim').addEventListener('click', () => {
    navOpen(false);
    document.body.classList.remove('side-open');
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (state.dmPeer) closeDM();
    document.body.classList.remove('side-open');
    if (document.body.classList.contains('nav-open')) {
      navOpen(false);
      $('open-nav').focus();
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      saveNow();
      return;
    }
    retrySoon();
    const r = state.rooms.get(state.current);
    if (r) r.unread = 0;
    markRead(r);
    if (state.dmPeer) dmView(state.dmPeer).unread = 0;
    renderRoomList();
    renderDMList();
    renderTitle();
  });
  window.addEventListener('online', retrySoon);
  window.addEventListener('pagehide', saveNow);
}

initLogin();
initApp();
resume();
