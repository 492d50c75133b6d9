// Unit tests of the client's pure parts: no sockets, no timers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  backoffDelay,
  idGenerator,
  MEMBER_EVENTS_MAX,
  MemberList,
  Outbox,
  parseFrames,
  PROBE_AFTER,
  probeDue,
  reconnectPlan,
  RoomStream,
  splitFrames,
  TokenBucket,
} from '../switchboard.js';
import { restartDelay } from '../lib/backoff.js';

const seqs = (msgs) => msgs.map((m) => m.seq);
const msg = (seq) => ({ type: 'message', room: 'r', seq, from: 'a', data: { text: `m${seq}` }, ts: 0 });

describe('probeDue', () => {
  test('probes at the third refusal in a row, then ever more rarely', () => {
    assert.equal(PROBE_AFTER, 3);
    const due = Array.from({ length: 50 }, (_, i) => i + 1).filter((n) => probeDue(n));
    assert.deepEqual(due, [3, 6, 12, 24, 48]);
  });

  test('after = 1 probes at once, then at 2, 4, 8 …', () => {
    const due = Array.from({ length: 10 }, (_, i) => i + 1).filter((n) => probeDue(n, 1));
    assert.deepEqual(due, [1, 2, 4, 8]);
  });

  test('nonsense counts never probe', () => {
    for (const n of [0, -3, 3.5, NaN, Infinity]) assert.equal(probeDue(n), false, String(n));
  });
});

describe('backoffDelay', () => {
  test('stays within [0, min(cap, base·2^attempt)) for any random value', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const window = Math.min(30000, 500 * 2 ** attempt);
      for (const r of [0, 0.25, 0.5, 0.999999, 1 - Number.EPSILON]) {
        const d = backoffDelay(attempt, { random: () => r });
        assert.ok(d >= 0 && d < window, `attempt ${attempt} random ${r}: ${d} not in [0, ${window})`);
        assert.equal(d, Math.floor(d));
      }
    }
  });

  test('doubles the window and caps it', () => {
    const top = (attempt, opts) => backoffDelay(attempt, { ...opts, random: () => 0.999999 });
    assert.equal(top(0), 499);
    assert.equal(top(1), 999);
    assert.equal(top(2), 1999);
    assert.equal(top(5), 15999);
    assert.equal(top(6), 29999); // 32 s capped at 30 s
    assert.equal(top(1000), 29999);
    assert.equal(top(3, { baseMs: 100, capMs: 500 }), 499);
    assert.equal(backoffDelay(7, { random: () => 0 }), 0); // full jitter reaches 0
  });

  test('is spread over the whole window (full jitter)', () => {
    const n = 2000;
    const ds = Array.from({ length: n }, () => backoffDelay(3)); // window 4000 ms
    const low = ds.filter((d) => d < 1000).length;
    const high = ds.filter((d) => d >= 3000).length;
    assert.ok(low > n / 8 && high > n / 8, `low ${low} high ${high}`);
    assert.ok(Math.max(...ds) < 4000);
  });
});

describe('restartDelay', () => {
  test('stays within [0, 500) for any random value', () => {
    for (const r of [0, 0.25, 0.5, 0.999999, 1 - Number.EPSILON]) {
      const d = restartDelay({ random: () => r });
      assert.ok(d >= 0 && d < 500, `random ${r}: ${d} not in [0, 500)`);
      assert.equal(d, Math.floor(d));
    }
    assert.equal(restartDelay({ random: () => 0.999999 }), 499);
    assert.equal(restartDelay({ random: () => 0.999999, jitterMs: 100 }), 99);
    assert.equal(restartDelay({ random: () => 0 }), 0);
  });

  test('is spread over the whole window, so that the clients of a drained node do not reconnect in one instant', () => {
    const n = 2000;
    const ds = Array.from({ length: n }, () => restartDelay());
    const low = ds.filter((d) => d < 125).length;
    const high = ds.filter((d) => d >= 375).length;
    assert.ok(low > n / 8 && high > n / 8, `low ${low} high ${high}`);
    assert.ok(Math.max(...ds) < 500);
  });
});

describe('reconnectPlan', () => {
  test('maps close codes', () => {
    const cases = {
      1000: 'backoff',
      1001: 'immediate',
      1006: 'backoff',
      1008: 'stop',
      1009: 'backoff',
      1011: 'backoff',
      1012: 'immediate',
      1013: 'slow',
      4000: 'backoff',
      4001: 'stop',
      4003: 'stop',
    };
    for (const [code, want] of Object.entries(cases)) assert.equal(reconnectPlan(Number(code)), want, `code ${code}`);
  });
});

describe('TokenBucket', () => {
  test('allows a burst, then paces at the rate', () => {
    const b = new TokenBucket({ perSecond: 10, burst: 3 }, 0);
    assert.deepEqual([b.take(0), b.take(0), b.take(0)], [0, 0, 0]);
    assert.equal(b.take(0), 100); // next token in 100 ms
    assert.equal(b.take(50), 50);
    assert.equal(b.take(100), 0);
    assert.equal(b.take(10000), 0); // refilled, but never past the burst
    assert.equal(b.take(10000), 0);
    assert.equal(b.take(10000), 0);
    assert.ok(b.take(10000) > 0);
  });
});

describe('splitFrames and parseFrames', () => {
  test('split batched frames on newline', () => {
    assert.deepEqual(splitFrames('{"type":"a"}'), ['{"type":"a"}']);
    assert.deepEqual(splitFrames('{"type":"a"}\n{"type":"b"}\n\n{"type":"c"}\n'), [
      '{"type":"a"}',
      '{"type":"b"}',
      '{"type":"c"}',
    ]);
    assert.deepEqual(splitFrames(''), []);
    assert.deepEqual(splitFrames('{"type":"a"}\r\n{"type":"b"}'), ['{"type":"a"}', '{"type":"b"}']);
  });

  test('keep the good frames of a batch with a bad one', () => {
    const bad = [];
    const frames = parseFrames('{"type":"a","data":"x\\ny"}\nnot json\n[1]\n{"no":"type"}\n{"type":"b"}', (line) =>
      bad.push(line),
    );
    assert.deepEqual(frames, [{ type: 'a', data: 'x\ny' }, { type: 'b' }]);
    assert.deepEqual(bad, ['not json', '[1]', '{"no":"type"}']);
  });
});

describe('idGenerator', () => {
  test('ids are unique, short strings with a per-client prefix', () => {
    const a = idGenerator();
    const b = idGenerator();
    const ids = new Set();
    for (let i = 0; i < 5000; i++) ids.add(a());
    assert.equal(ids.size, 5000);
    const x = a();
    const y = b();
    assert.notEqual(x.split('-')[0], y.split('-')[0]);
    assert.ok(x.length <= 64 && typeof x === 'string');
    assert.equal(idGenerator(() => 'p')(), 'p-1');
  });
});

describe('RoomStream', () => {
  test('delivers in order and drops duplicates', () => {
    const s = new RoomStream('e1', 0);
    assert.deepEqual(seqs(s.push(msg(1)).deliver), [1]);
    assert.deepEqual(seqs(s.push(msg(2)).deliver), [2]);
    const dup = s.push(msg(2));
    assert.equal(dup.duplicate, true);
    assert.deepEqual(dup.deliver, []);
    assert.equal(s.push(msg(1)).duplicate, true);
    assert.equal(s.last, 2);
  });

  test('starts after the seq it was created with', () => {
    const s = new RoomStream('e1', 10);
    assert.equal(s.push(msg(10)).duplicate, true);
    assert.deepEqual(seqs(s.push(msg(11)).deliver), [11]);
  });

  test('detects a gap and fills it from history', () => {
    const s = new RoomStream('e1', 0);
    s.push(msg(1));
    const r = s.push(msg(3)); // seq N+2 after N
    assert.deepEqual(r.deliver, []);
    assert.deepEqual(r.gap, { after: 1, before: 3 });
    // Live messages wait while the fill is pending.
    const r4 = s.push(msg(4));
    assert.deepEqual(r4.deliver, []);
    assert.equal(r4.gap, null);
    assert.equal(s.push(msg(3)).duplicate, true); // held already
    const f = s.fill([msg(2)], 2);
    assert.deepEqual(seqs(f.deliver), [2, 3, 4]);
    assert.equal(f.lost, 0);
    assert.equal(f.gap, null);
    assert.equal(s.last, 4);
  });

  test('a gap filled live before history answers is not delivered twice', () => {
    const s = new RoomStream('e1', 0);
    s.push(msg(1));
    s.push(msg(3));
    s.push(msg(2)); // arrives late, during the fill: held
    const f = s.fill([msg(1), msg(2)], 2); // history overlaps
    assert.deepEqual(seqs(f.deliver), [2, 3]);
  });

  test('gives up on seqs history no longer has', () => {
    const s = new RoomStream('e1', 0);
    s.push(msg(1));
    const r = s.push(msg(6));
    assert.deepEqual(r.gap, { after: 1, before: 6 });
    const f = s.fill([msg(4), msg(5)], 5); // 2 and 3 expired
    assert.deepEqual(seqs(f.deliver), [4, 5, 6]);
    assert.equal(f.lost, 2);
    assert.equal(s.last, 6);
  });

  test('reports the next gap when held messages leave another hole', () => {
    const s = new RoomStream('e1', 0);
    s.push(msg(3));
    s.push(msg(6));
    const f = s.fill([msg(1), msg(2)], 2);
    assert.deepEqual(seqs(f.deliver), [1, 2, 3]);
    assert.deepEqual(f.gap, { after: 3, before: 6 });
    assert.deepEqual(seqs(s.fill([msg(4), msg(5)], 5).deliver), [4, 5, 6]);
  });

  test('a resync fill holds live messages and delivers them after history', () => {
    const s = new RoomStream('e2', 0);
    s.beginFill();
    assert.deepEqual(s.push(msg(4)).deliver, []); // live, after the joined seq 3
    const f = s.fill([msg(1), msg(2), msg(3)], 3);
    assert.deepEqual(seqs(f.deliver), [1, 2, 3, 4]);
  });

  test('an empty fill skips ahead', () => {
    const s = new RoomStream('e2', 0);
    s.beginFill();
    const f = s.fill([], 5);
    assert.equal(f.lost, 5);
    assert.equal(s.last, 5);
    assert.deepEqual(seqs(s.push(msg(6)).deliver), [6]);
  });

  test('reset forgets held messages but keeps the position', () => {
    const s = new RoomStream('e1', 0);
    s.push(msg(1));
    s.push(msg(3));
    s.reset();
    assert.equal(s.last, 1);
    assert.equal(s.filling, false);
    assert.deepEqual(seqs(s.push(msg(2)).deliver), [2]);
    assert.deepEqual(seqs(s.push(msg(3)).deliver), [3]);
  });

  test('ignores frames without a numeric seq', () => {
    const s = new RoomStream('e1', 0);
    assert.equal(s.push({ seq: '1' }).duplicate, true);
    assert.equal(s.push({}).duplicate, true);
  });
});

describe('Outbox', () => {
  const entry = (id, extra) => ({ id, kind: 'send', room: 'r', frame: `{"id":"${id}"}`, dataKey: `"${id}"`, ...extra });

  test('resends unacknowledged entries with the same ids, in order, after a disconnect', () => {
    const ob = new Outbox({ now: () => 1000 });
    ob.add(entry('a'));
    ob.add(entry('b'));
    ob.add({ id: 'd', kind: 'dm', to: 'bob', frame: '{}', dataKey: '"d"' });
    const ready = () => true;
    assert.deepEqual(ob.ready(ready).map((e) => e.id), ['a', 'b', 'd']);
    for (const e of ob.ready(ready)) ob.markSent(e.id);
    assert.deepEqual(ob.ready(ready), []); // in flight
    ob.remove('a'); // acked
    ob.disconnected();
    const again = ob.ready(ready);
    assert.deepEqual(again.map((e) => e.id), ['b', 'd']);
    assert.deepEqual(again.map((e) => e.frame), ['{"id":"b"}', '{}']);
    assert.equal(ob.get('b').attempts, 1);
    ob.markSent('b');
    assert.equal(ob.get('b').attempts, 2);
  });

  test('holds sends until their room is ready, not DMs', () => {
    const ob = new Outbox();
    ob.add(entry('a', { room: 'x' }));
    ob.add(entry('b', { room: 'y' }));
    ob.add({ id: 'd', kind: 'dm', to: 'bob', frame: '{}', dataKey: '1' });
    assert.deepEqual(ob.ready((room) => room === 'y').map((e) => e.id), ['b', 'd']);
    assert.deepEqual(ob.forRoom('x').map((e) => e.id), ['a']);
  });

  test('expires only entries sent longer ago than the resend window', () => {
    let now = 0;
    const ob = new Outbox({ resendWindowMs: 100, now: () => now });
    ob.add(entry('sent'));
    ob.add(entry('never'));
    ob.markSent('sent');
    now = 100;
    assert.deepEqual(ob.expired(), []);
    now = 101;
    assert.deepEqual(ob.expired().map((e) => e.id), ['sent']);
    assert.equal(ob.get('sent'), undefined);
    now = 1e9;
    assert.deepEqual(ob.expired(), []); // never transmitted: safe to send any time
    assert.equal(ob.size, 1);
  });

  test('matches an echo to the oldest transmitted entry with that payload', () => {
    const ob = new Outbox();
    ob.add(entry('a', { dataKey: 'X' }));
    ob.add(entry('b', { dataKey: 'X' }));
    ob.add(entry('c', { dataKey: 'X', room: 'other' }));
    assert.equal(ob.matchEcho('send', 'r', 'X'), undefined); // nothing sent yet
    ob.markSent('a');
    ob.markSent('b');
    ob.markSent('c');
    const first = ob.matchEcho('send', 'r', 'X');
    assert.equal(first.id, 'a');
    first.echoed = true;
    assert.equal(ob.matchEcho('send', 'r', 'X').id, 'b');
    assert.equal(ob.matchEcho('send', 'r', 'Y'), undefined);
    assert.equal(ob.matchEcho('dm', 'r', 'X'), undefined);
    assert.equal(ob.matchEcho('send', 'other', 'X').id, 'c');
  });
});

describe('MemberList', () => {
  const joinedEv = (user, count) => ({ type: 'member_joined', room: 'r', user, member_count: count });
  const leftEv = (user, count) => ({ type: 'member_left', room: 'r', user, member_count: count });

  test('a small room: joined is the whole list, events keep it', () => {
    const l = new MemberList();
    l.fromJoined({ members: ['ann', 'bob'], member_count: 2 });
    assert.equal(l.complete, true);
    assert.equal(l.next(), null);
    l.onEvent(joinedEv('cat', 3));
    l.onEvent(leftEv('ann', 2));
    assert.deepEqual(l.list(), ['bob', 'cat']);
    assert.equal(l.count, 2);
  });

  test('an old server without member_count: the list is whole and counted', () => {
    const l = new MemberList();
    l.fromJoined({ members: ['ann'] });
    l.onEvent({ type: 'member_joined', room: 'r', user: 'bob' });
    assert.deepEqual([l.list(), l.count, l.complete], [['ann', 'bob'], 2, true]);
  });

  test('a partial joined pages on; events during a page are applied again after it', () => {
    const l = new MemberList();
    l.fromJoined({ members: ['a1', 'a2'], member_count: 5, members_next: 'a2' });
    assert.equal(l.complete, false);
    assert.equal(l.next(), 'a2');
    l.asking();
    assert.equal(l.next(), null); // one page at a time
    // The page was read before b2 left and c1 joined, whose events come
    // while it is in flight.
    l.onEvent(leftEv('b2', 4));
    l.onEvent(joinedEv('c1', 5));
    l.page({ members: ['b1', 'b2'], member_count: 5, members_next: 'b2' });
    assert.deepEqual(l.list(), ['a1', 'a2', 'b1', 'c1']);
    assert.equal(l.next(), 'b2');
    l.asking();
    l.page({ members: ['b3', 'c1'], member_count: 5 });
    assert.deepEqual(l.list(), ['a1', 'a2', 'b1', 'b3', 'c1']);
    assert.deepEqual([l.complete, l.count, l.next()], [true, 5, null]);
  });

  test('a room that grows large stops being complete, and is read again when it is small again', () => {
    const max = MEMBER_EVENTS_MAX;
    const l = new MemberList();
    l.fromJoined({ members: ['ann'], member_count: max });
    l.onEvent(joinedEv('zed', max + 1));
    assert.deepEqual([l.complete, l.large, l.next()], [false, true, null]);
    assert.equal(l.onEvent(leftEv('ann', max)), true); // small again: read again
    l.restart();
    assert.equal(l.next(), '');
    l.asking();
    l.page({ members: ['bob', 'zed'], member_count: 2 });
    assert.deepEqual([l.list(), l.complete, l.count], [['bob', 'zed'], true, 2]);
  });

  test('a large room pages on demand and never claims to be complete', () => {
    const l = new MemberList();
    l.fromJoined({ members: ['a'], member_count: MEMBER_EVENTS_MAX + 5, members_next: 'a' });
    assert.deepEqual([l.large, l.complete, l.next(), l.cursor], [true, false, null, 'a']);
    l.asking();
    l.page({ members: ['b'], member_count: MEMBER_EVENTS_MAX + 6 });
    assert.deepEqual([l.list(), l.count, l.complete, l.cursor], [['a', 'b'], MEMBER_EVENTS_MAX + 6, false, null]);
  });
});
