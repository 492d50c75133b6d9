// Unit tests of the demo chat's saved session (web/store.js): what a page
// reload trusts from localStorage.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { MAX_MESSAGES, parseSession, serializeSession } from '../store.js';

const msg = (seq, from = 'bob') => ({ seq, epoch: 'e1', from, text: `m${seq}`, ts: 1700000000000 + seq });

function session() {
  return {
    name: 'alice',
    rooms: [
      { name: 'lobby', position: { since: 3, epoch: 'e1' }, hasOlder: false, msgs: [msg(1), msg(2, 'alice'), msg(3)] },
      { name: 'random', position: null, hasOlder: false, msgs: [] },
    ],
    dms: [{ peer: 'bob', msgs: [{ from: 'bob', text: 'hi', ts: 5 }, { from: 'alice', text: 'yo', ts: 6 }] }],
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
    raw.dms.push({ peer: 'alice', msgs: [] }, { peer: 'carol', msgs: [{ from: 'mallory', text: 'spoof', ts: 1 }] });
    raw.pending.push({ id: 'x', room: 'not-joined', text: 't', ts: 1 }, { id: 'bad id!', room: 'lobby', text: 't', ts: 1 });
    raw.open = { room: 'elsewhere', dm: 'mallory' };
    const got = parseSession(JSON.stringify(raw));
    assert.deepEqual(got.rooms.map((r) => r.name), ['lobby', 'random', 'ok']);
    assert.equal(got.rooms[2].position, null, 'a negative since is no position');
    assert.deepEqual(got.rooms[2].msgs, []);
    assert.deepEqual(got.rooms[0].msgs.map((m) => m.seq), [1, 2, 3, 9]);
    assert.equal('extra' in got.rooms[0].msgs[3], false, 'unknown fields are not kept');
    assert.deepEqual(got.dms.map((d) => [d.peer, d.msgs.length]), [['bob', 2], ['carol', 0]], 'no DM with oneself, no foreign authors');
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
