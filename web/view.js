// DOM helpers of the demo chat. Every piece of user text goes through
// textContent (el's `text`), never through innerHTML.

/**
 * el creates an element. props: className, text (set as textContent),
 * attrs (attributes), on (event listeners); children are appended.
 */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  if (props.className) e.className = props.className;
  if (props.text !== undefined) e.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) e.setAttribute(k, v);
  for (const [k, fn] of Object.entries(props.on ?? {})) e.addEventListener(k, fn);
  for (const c of children) if (c) e.append(c);
  return e;
}

export const $ = (id) => document.getElementById(id);

/** avatar fills e with a user's initial and a stable colour class. */
export function avatar(e, user) {
  let h = 0;
  for (const ch of user) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  e.className = `avatar av-${h % 8}`;
  e.textContent = (user[0] ?? '?').toUpperCase();
  return e;
}

/** messageText turns message data into the text to show. */
export function messageText(data) {
  if (typeof data === 'string') return data;
  if (data && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'short', day: 'numeric' });

export const clock = (ts) => timeFmt.format(new Date(ts));

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return 'Today';
  today.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Yesterday';
  return dayFmt.format(d);
}

const GROUP_MS = 5 * 60 * 1000;

/**
 * renderItems rebuilds list from items (oldest first): messages grouped by
 * author while consecutive and within five minutes, own messages styled as
 * such, system lines and day dividers in between.
 *
 * Item: {kind: "msg", from, text, ts, pending?, failed?, edited?, deleted?, note?, key} or
 * {kind: "system", text, ts}. pendingText is the note under a pending
 * message; editing ({key, text}) shows that item's inline editor; seenBy
 * ({key, text}) puts a "Seen by" line under that item.
 */
export function renderItems(list, items, me, { compact = false, pendingText = 'Sending…', editing = null, seenBy = null } = {}) {
  const out = [];
  let prev = null;
  let day = '';
  for (const it of items) {
    const d = dayLabel(it.ts || Date.now());
    if (d !== day) {
      day = d;
      out.push(el('li', { className: 'day', text: d }));
      prev = null;
    }
    if (it.kind === 'system') {
      out.push(el('li', { className: `system ${it.tone ?? ''}`, text: it.text }));
      prev = null;
      continue;
    }
    const grouped = prev && prev.from === it.from && it.ts - prev.ts < GROUP_MS;
    out.push(messageRow(it, me, grouped, compact, pendingText, editing));
    if (seenBy && seenBy.key === it.key) out.push(el('li', { className: 'seen', text: seenBy.text }));
    prev = it;
  }
  list.replaceChildren(...out);
}

function messageRow(it, me, grouped, compact, pendingText, editing) {
  const mine = it.from === me;
  const cls = ['msg', mine ? 'mine' : 'theirs', grouped ? 'cont' : 'first'];
  if (it.pending) cls.push('pending');
  if (it.failed) cls.push('failed');
  const li = el('li', { className: cls.join(' '), attrs: { 'data-key': it.key, 'data-from': it.from } });
  if (!mine && !compact) li.append(grouped ? el('span', { className: 'avatar-gap' }) : avatar(el('span'), it.from));
  const body = el('div', { className: 'body' });
  if (!grouped) {
    body.append(
      el('div', { className: 'meta' },
        mine || compact ? null : el('span', { className: 'author', text: it.from }),
        el('time', { text: it.ts ? clock(it.ts) : '', attrs: { datetime: new Date(it.ts || Date.now()).toISOString() } })),
    );
  }
  // A deleted message keeps its place, not its text; an edited one says so.
  if (editing && editing.key === it.key) {
    body.append(editForm(editing));
    li.append(body);
    return li;
  }
  const bubble = it.deleted
    ? el('div', { className: 'bubble text deleted', text: 'message deleted' })
    : el('div', { className: 'bubble text', text: it.text }, it.edited ? el('span', { className: 'edited', text: ' (edited)' }) : null);
  if (it.ts) bubble.title = new Date(it.ts).toLocaleString();
  // Own sent messages can be edited and deleted (the room list only).
  const changeable = mine && !compact && !it.pending && !it.failed && !it.deleted && it.key && !it.key.startsWith('id:');
  if (changeable) {
    body.append(el('div', { className: 'actions' },
      el('button', { className: 'icon-btn mini', attrs: { type: 'button', 'data-action': 'edit', 'aria-label': 'Edit message', title: 'Edit' } },
        el('span', { text: '✎', attrs: { 'aria-hidden': 'true' } })),
      el('button', { className: 'icon-btn mini', attrs: { type: 'button', 'data-action': 'delete', 'aria-label': 'Delete message', title: 'Delete' } },
        el('span', { text: '🗑', attrs: { 'aria-hidden': 'true' } }))));
  }
  body.append(bubble);
  if (it.pending) body.append(el('div', { className: 'status', text: pendingText }));
  if (it.failed) {
    body.append(el('div', { className: 'status' }, it.note || 'Not delivered',
      // The room list retries on a click anywhere on the row; the button
      // makes that reachable from the keyboard.
      compact ? null : el('button', { className: 'link retry', text: 'Retry', attrs: { type: 'button' } })));
  }
  li.append(body);
  return li;
}

/** editForm is the inline editor of an own message: editing = {key, text}. */
function editForm(editing) {
  const ta = el('textarea', { className: 'edit-text', attrs: { rows: '2', maxlength: '4000', 'aria-label': 'Edit message text' } });
  ta.value = editing.text;
  return el('form', { className: 'edit-form', attrs: { 'data-edit': editing.key } },
    ta,
    el('div', { className: 'edit-buttons' },
      el('button', { className: 'link', text: 'Cancel', attrs: { type: 'button', 'data-action': 'cancel-edit' } }),
      el('button', { className: 'primary small', text: 'Save', attrs: { type: 'submit' } })));
}

/** stickToBottom runs render and keeps scroller pinned to the bottom if it
 * was there before (or force is set). */
export function stickToBottom(scroller, render, force = false) {
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  render();
  if (atBottom || force) scroller.scrollTop = scroller.scrollHeight;
}

/** typingText describes who is typing. */
export function typingText(users) {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return 'Several people are typing…';
}

/** autoGrow makes a textarea grow with its content, up to its CSS max-height. */
export function autoGrow(ta) {
  const fit = () => {
    ta.style.height = 'auto';
    ta.style.height = `${ta.scrollHeight}px`;
  };
  ta.addEventListener('input', fit);
  return fit;
}
