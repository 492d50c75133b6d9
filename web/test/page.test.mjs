// Unit tests of the demo chat's pure parts: its saved session (store.js),
// what a page reload trusts from localStorage, and its connection texts
// (status.js), and a room's bookkeeping (conversation.js).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { addEntry, addMessage, applyChange, moderationNotice, newRoomView, pendingSends, savedRoom } from '../conversation.js';
import { bannerText, isDown, retryLabel, statusText } from '../status.js';
import { MAX_MESSAGES, parseSession, serializeSession } from '../store.js';

const msg = (seq, from = 'bob') => ({ seq, epoch: 'e1', from, text: `m${seq}`, ts: 1700000000000 + seq });

function session() {
  return {
    name: 'alice',
    rooms: [
      { name: 'lobby', position: { since: 3, epoch: 'e1' }, hasOlder: false, msgs: [msg(1), msg(2, 'alice'), msg(3)] },
      { name: 'random', position: null, hasOlder: false, msgs: [] },
    ],
    dms: [{ peer: 'bob', unread: 2, msgs: [{ from: 'bob', text: 'hi', ts: 5 }, { from: 'alice', text: 'yo', ts: 6 }] }],
    open: { room: 'lobby', dm: 'bob' },
    pending: [{ id: 'k3j9x2q1-7', room: 'lobby', text: 'sent offline', ts: 9 }],
  };
}

describe('saved session', () => {
  test('round-trips', () => {
    assert.deepEqual(parseSession(serializeSession(session())), session());
  });

  test('rejects what is not a session of this version with a valid name', () => {
    for (const text of [null, '', 'nope', '[]', 'null', '42', '{"v":2,"name":"alice"}', '{"v":1}', '{"v":1,"name":"<img src=x>"}', '{"v":1,"name":"a b"}']) {
      assert.equal(parseSession(text), null, String(text));
    }
    assert.deepEqual(parseSession('{"v":1,"name":"alice"}'), { name: 'alice', rooms: [], dms: [], open: { room: null, dm: null }, pending: [] });
  });

  test('drops malformed rooms, messages, DMs and pending sends one by one', () => {
    const s = session();
    const raw = JSON.parse(serializeSession(s));
    raw.rooms.push({ name: 'bad room!' }, { name: 'lobby' }, 'x', { name: 'ok', position: { since: -1, epoch: 'e1' }, msgs: 'no' });
    raw.rooms[0].msgs.push(
      { ...msg(4), seq: '4' },
      { ...msg(5), from: 'x y' },
      { ...msg(6), text: { html: '<b>' } },
      { ...msg(7), ts: 'now' },
      { ...msg(8), epoch: 'has space' },
      { ...msg(9), extra: '<script>' },
    );
    raw.dms.push({ peer: 'alice', msgs: [] }, { peer: 'carol', unread: -4, msgs: [{ from: 'mallory', text: 'spoof', ts: 1 }] });
    raw.pending.push({ id: 'x', room: 'not-joined', text: 't', ts: 1 }, { id: 'bad id!', room: 'lobby', text: 't', ts: 1 });
    raw.open = { room: 'elsewhere', dm: 'mallory' };
    const got = parseSession(JSON.stringify(raw));
    assert.deepEqual(got.rooms.map((r) => r.name), ['lobby', 'random', 'ok']);
    assert.equal(got.rooms[2].position, null, 'a negative since is no position');
    assert.deepEqual(got.rooms[2].msgs, []);
    assert.deepEqual(got.rooms[0].msgs.map((m) => m.seq), [1, 2, 3, 9]);
    assert.equal('extra' in got.rooms[0].msgs[3], false, 'unknown fields are not kept');
    assert.deepEqual(got.dms.map((d) => [d.peer, d.msgs.length, d.unread]), [['bob', 2, 2], ['carol', 0, 0]], 'no DM with oneself, no foreign authors, no negative count');
    assert.deepEqual(got.pending.map((p) => p.id), ['k3j9x2q1-7']);
    assert.deepEqual(got.open, { room: null, dm: null }, 'the open conversation must be one of the saved ones');
  });

  test('keeps the newest messages of each conversation', () => {
    const s = session();
    s.rooms[0].msgs = Array.from({ length: 80 }, (_, i) => msg(i + 1));
    s.rooms[0].position = { since: 80, epoch: 'e1' };
    const got = parseSession(serializeSession(s));
    assert.equal(got.rooms[0].msgs.length, MAX_MESSAGES);
    assert.equal(got.rooms[0].msgs[0].seq, 31);
    assert.equal(got.rooms[0].hasOlder, true);
  });

  test('thins messages out to fit the budget, and drops positions with them', () => {
    const s = session();
    const big = 'x'.repeat(1000);
    s.rooms[0].msgs = Array.from({ length: 50 }, (_, i) => ({ ...msg(i + 1), text: big }));
    s.rooms[0].position = { since: 50, epoch: 'e1' };
    const fewer = serializeSession(s, 30000);
    assert.ok(fewer.length <= 30000);
    const got = parseSession(fewer);
    assert.equal(got.rooms[0].msgs.length, 20);
    assert.deepEqual(got.rooms[0].position, { since: 50, epoch: 'e1' });
    assert.equal(got.rooms[0].hasOlder, true);

    const none = parseSession(serializeSession(s, 1000));
    assert.deepEqual(none.rooms[0].msgs, []);
    assert.equal(none.rooms[0].position, null, 'no messages kept: the reload loads history instead of resuming');
    assert.equal(serializeSession(s, 10), null);
  });
});

describe('connection texts', () => {
  const now = 1_000_000;
  test('the first connect is not an outage; later ones are', () => {
    assert.equal(isDown({ state: 'connecting', attempt: 0 }), false);
    assert.equal(isDown({ state: 'connected' }), false);
    assert.equal(isDown({ state: 'connecting', attempt: 2 }), true);
    assert.equal(isDown({ state: 'reconnecting', at: now }), true);
    assert.equal(isDown({ state: 'offline', code: 4001 }), true);
  });

  test('the banner counts down to the next attempt', () => {
    assert.equal(bannerText({ state: 'reconnecting', at: now + 7200 }, now), 'Disconnected — reconnecting in 8 s');
    assert.equal(bannerText({ state: 'reconnecting', at: now - 5 }, now), 'Disconnected — reconnecting…');
    assert.equal(bannerText({ state: 'connecting', attempt: 3 }, now), 'Disconnected — reconnecting…');
    assert.equal(statusText({ state: 'reconnecting', at: now + 7200 }, now), 'Reconnecting in 8 s');
    assert.equal(statusText({ state: 'connected', node: 'node-a' }), 'Connected to node-a');
  });

  test('offline says why, and what Retry does', () => {
    const expired = { state: 'offline', code: 4001, reason: 'token expired' };
    assert.equal(bannerText(expired), 'Offline: session expired (token expired)');
    assert.equal(retryLabel(expired), 'Sign in');
    assert.equal(bannerText({ state: 'offline', code: 1000, reason: 'closed by client' }), 'Offline');
    assert.equal(retryLabel({ state: 'offline', code: 1008 }), 'Reconnect');
    assert.equal(retryLabel({ state: 'reconnecting', at: now }), 'Retry now');
  });
});

describe('room view', () => {
  test('a message restored from storage and its replay show once; what is saved', () => {
    const r = newRoomView('lobby');
    assert.equal(addMessage(r, { seq: 1, from: 'bob', ts: 1, data: 'saved' }, 'e1'), true);
    assert.equal(addMessage(r, { seq: 1, from: 'bob', ts: 1, data: { text: 'saved' } }, 'e1'), false, 'the same epoch:seq again');
    r.items.push({ kind: 'msg', key: 'id:k-1', id: 'k-1', from: 'alice', text: 'pending', ts: 2, pending: true, epochIdx: Infinity, seq: 1 });
    assert.deepEqual(pendingSends(r), [{ id: 'k-1', room: 'lobby', text: 'pending', ts: 2 }]);
    const pos = { since: 1, epoch: 'e1' };
    assert.equal(savedRoom(r, pos).position, null, 'no position before the first page of history is shown');
    r.firstPage = 'done';
    assert.deepEqual(savedRoom(r, pos), { name: 'lobby', position: pos, hasOlder: false, msgs: [{ seq: 1, epoch: 'e1', from: 'bob', text: 'saved', ts: 1 }] });
  });

  test('edits and deletes change their message, live or in history pages, and are not shown', () => {
    const msg = (seq, text, from = 'bob') => ({ type: 'message', room: 'r', seq, from, ts: seq, data: { text } });
    const edited = (seq, target, text) => ({ type: 'message_edited', room: 'r', seq, target, from: 'bob', ts: seq, data: { text } });
    const deleted = (seq, target) => ({ type: 'message_deleted', room: 'r', seq, target, from: 'bob', ts: seq });

    // In order, as live or recovered.
    const r = newRoomView('r');
    for (const f of [msg(1, 'helo'), msg(2, 'spam'), edited(3, 1, 'hello'), edited(4, 1, 'hello!'), deleted(5, 2)]) addEntry(r, f, 'e1');
    assert.deepEqual(r.items.map((it) => [it.seq, it.text, !!it.edited, !!it.deleted]), [[1, 'hello!', true, false], [2, '', false, true]]);
    assert.ok(r.items.every((it) => it.kind === 'msg'), 'the change entries are not items');

    // History pages load newest first: the changes come before their messages.
    const h = newRoomView('r');
    for (const f of [edited(4, 1, 'hello!'), deleted(5, 2)]) addEntry(h, f, 'e1');
    assert.equal(h.items.length, 0);
    for (const f of [msg(1, 'helo'), msg(2, 'spam'), edited(3, 1, 'hello')]) addEntry(h, f, 'e1');
    assert.deepEqual(h.items.map((it) => [it.seq, it.text, !!it.edited, !!it.deleted]), [[1, 'hello!', true, false], [2, '', false, true]],
      'an older edit does not undo a newer one');

    // A delete is final; a change of another epoch's seq does not apply.
    applyChange(r, edited(6, 2, 'back'), 'e1');
    assert.equal(r.items[1].deleted, true);
    assert.equal(applyChange(r, deleted(7, 1), 'e2'), null);
    assert.equal(r.items[0].text, 'hello!');

    r.firstPage = 'done';
    assert.deepEqual(savedRoom(r, null).msgs.map(({ text, edited, deleted }) => ({ text, edited, deleted })),
      [{ text: 'hello!', edited: true, deleted: undefined }, { text: '', edited: undefined, deleted: true }], 'a deleted text is not saved');
  });

  test('the notice of a room this user may not write to', () => {
    const hhmm = (ts) => new Date(ts).toISOString().slice(11, 16);
    const now = Date.UTC(2026, 0, 1, 14, 0);
    const until = Date.UTC(2026, 0, 1, 14, 5);
    assert.equal(moderationNotice('lobby', { muted: true, until, frozen: false }, hhmm, now), 'You are muted in #lobby until 14:05');
    assert.equal(moderationNotice('lobby', { muted: true, until: 0, frozen: true }, hhmm, now), 'You are muted in #lobby');
    assert.equal(moderationNotice('lobby', { muted: true, until, frozen: true }, hhmm, until + 1), 'This room is frozen', 'a timed mute ends by itself');
    assert.equal(moderationNotice('lobby', { muted: false, until: 0, frozen: false }, hhmm, now), '');
  });
});
