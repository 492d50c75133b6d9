// Integration tests of the client library against the real server, which
// each test starts on a free loopback port (built once per run).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import WebSocket from 'ws';

import { connect } from '../switchboard.js';
import { CountingWebSocket, open } from './helpers/clients.mjs';
import { pause, serverBinary, sleep, startProxy, startServer, waitFor } from './helpers/server.mjs';

serverBinary(); // build before the first test's clock starts

const cleanups = [];
const cleanup = (fn) => cleanups.push(fn);
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function server(opts) {
  const s = await startServer(opts);
  cleanup(() => s.stop('SIGKILL'));
  return s;
}

async function client(name, url, opts) {
  const c = await open(name, url, opts);
  cleanup(() => c.close());
  return c;
}

describe('live server', () => {
  test('join, send, receive, history, presence, typing and DMs', async (t) => {
    const srv = await server();
    const alice = await client('alice', srv.wsUrl, { WebSocket: CountingWebSocket });
    const bob = await client('bob', srv.wsUrl, { WebSocket: CountingWebSocket });
    assert.equal(alice.node, 'test');

    const aj = await alice.join('lobby');
    assert.deepEqual(aj.members, ['alice']);
    assert.equal(aj.seq, 0);
    const bj = await bob.join('lobby');
    assert.deepEqual(bj.members, ['alice', 'bob']);
    await waitFor(() => alice.members('lobby').includes('bob'), { what: 'alice sees bob join' });

    const texts = ['one', 'two', 'three', 'four', 'five'];
    const sends = texts.map((text) => alice.send('lobby', { text }));
    const acks = await Promise.all(sends);
    assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5]);
    assert.deepEqual(acks.map((a) => a.id), sends.map((p) => p.id));
    await waitFor(() => bob.texts('lobby').length === 5, { what: 'bob receives 5 messages' });
    assert.deepEqual(bob.texts('lobby'), texts);
    assert.deepEqual(bob.rec.messages.map((m) => [m.seq, m.from, m.meta.source]), texts.map((_, i) => [i + 1, 'alice', 'live']));
    // Alice's own echoes carry the ids of her sends.
    await waitFor(() => alice.texts('lobby').length === 5);
    assert.deepEqual(alice.rec.messages.map((m) => m.meta.id), sends.map((p) => p.id));
    // Batching depends on timing (the scripted tests cover splitting).
    t.diagnostic(`WebSocket messages carrying several frames: ${CountingWebSocket.batched}`);

    const page = await bob.history('lobby', { limit: 2, before: 5 });
    assert.deepEqual(page.messages.map((m) => m.data.text), ['three', 'four']);
    assert.equal(page.epoch, aj.epoch);
    assert.deepEqual(await alice.presence('lobby'), ['alice', 'bob']);
    assert.ok((await alice.ping()) >= 0);

    bob.typing('lobby');
    await waitFor(() => alice.rec.typing.length === 1, { what: 'typing' });
    assert.deepEqual(alice.rec.typing[0], { room: 'lobby', user: 'bob' });

    const dm = bob.dm('alice', { text: 'psst' });
    assert.deepEqual(await dm, { id: dm.id });
    await waitFor(() => alice.rec.dms.length === 1 && bob.rec.dms.length === 1, { what: 'dm delivered' });
    assert.equal(alice.rec.dms[0].from, 'bob');
    assert.equal(alice.rec.dms[0].meta.id, undefined);
    assert.equal(bob.rec.dms[0].meta.id, dm.id, "the sender's copy is tied to its request");

    // The server's error codes reject the requests.
    await assert.rejects(bob.dm('carol', { text: 'hi' }), { code: 'offline' });
    await assert.rejects(alice.send('elsewhere', { text: 'x' }), { code: 'not_member' });
    await assert.rejects(alice.history('lobby', { limit: 500 }), { code: 'bad_request' });
    await assert.rejects(alice.join('bad room!'), { code: 'bad_request' });

    await bob.leave('lobby');
    await waitFor(() => !alice.members('lobby').includes('bob'), { what: 'alice sees bob leave' });
    assert.deepEqual(bob.joinedRooms(), []);
  });

  test('a refused upgrade stops reconnecting and says why', async () => {
    const srv = await server();
    const c = connect({ url: srv.wsUrl, name: 'not a valid name!', WebSocket, backoff: { baseMs: 20, capMs: 50 } });
    cleanup(() => c.close());
    const statuses = [];
    c.on('status', (s) => statuses.push(s));
    await waitFor(() => c.status.state === 'offline', { what: 'offline after the refusal' });
    assert.equal(c.status.code, 1008);
    assert.match(c.status.reason, /name must be/);
    await sleep(200);
    // The client asks why only after the third refusal in a row (probeDue).
    assert.equal(statuses.filter((s) => s.state === 'connecting').length, 3, 'no reconnect loop');
  });

  test('requests time out while the server does not answer, then work again', async () => {
    const srv = await server();
    const alice = await client('alice', srv.wsUrl, { requestTimeoutMs: 300 });
    await alice.join('r');
    await pause(srv.proc);
    try {
      const t = Date.now();
      await assert.rejects(alice.history('r'), { code: 'timeout' });
      await assert.rejects(alice.send('r', { text: 'lost?' }), { code: 'timeout' });
      assert.ok(Date.now() - t >= 550);
    } finally {
      srv.proc.kill('SIGCONT');
    }
    const page = await alice.history('r');
    // The send timed out on the client but the server did publish it.
    assert.deepEqual(page.messages.map((m) => m.data.text), ['lost?']);
    assert.equal(alice.status.state, 'connected');
  });

  for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT']) {
    test(`reconnects after a restart on the same port (${signal}) and delivers a send made meanwhile exactly once`, async () => {
      let srv = await server({ nodeId: 'before' });
      const fast = { backoff: { baseMs: 100, capMs: 1000 } };
      const alice = await client('alice', srv.wsUrl, fast);
      const bob = await client('bob', srv.wsUrl, fast);
      await alice.join('r');
      await bob.join('r');
      await alice.send('r', { text: 'before' });
      await waitFor(() => bob.texts('r').length === 1);

      await srv.stop(signal);
      await waitFor(() => alice.status.state === 'reconnecting' && bob.status.state === 'reconnecting', {
        what: 'both reconnecting',
      });
      const lost = alice.rec.statuses.find((s) => s.state === 'reconnecting');
      if (signal !== 'SIGKILL') {
        assert.equal(lost.code, signal === 'SIGTERM' ? 1012 : 1001);
        assert.ok(lost.inMs >= 0 && lost.inMs < 500, `a restarting server is retried at once but for a jitter, not after ${lost.inMs} ms`);
      } else {
        assert.equal(lost.code, 1006);
      }
      const during = alice.send('r', { text: 'during' }); // typed while the server is down
      await sleep(300);

      srv = await server({ port: srv.port, nodeId: 'after' });
      const ack = await during;
      await waitFor(() => bob.status.state === 'connected' && bob.node === 'after', { what: 'bob back' });
      await alice.send('r', { text: 'after' });
      await waitFor(() => bob.texts('r').includes('after'), { what: 'bob receives after' });
      await sleep(200); // would a duplicate arrive?
      assert.deepEqual(bob.texts('r'), ['before', 'during', 'after']);
      assert.deepEqual(alice.texts('r'), ['before', 'during', 'after']);
      const echo = alice.rec.messages.find((m) => m.data.text === 'during');
      assert.equal(echo.seq, ack.seq);
      // The restarted in-memory server has a new epoch: the rejoin could not
      // recover, so the client reloaded the room from history.
      assert.equal(bob.rec.resync.length, 1);
      assert.equal(bob.rec.resync[0].epochChanged, true);
      assert.deepEqual((await bob.history('r')).messages.map((m) => m.data.text), ['during', 'after']);
    });
  }

  test('a send whose ack was lost is resent with the same id and delivered once', async () => {
    const srv = await server();
    const proxy = await startProxy(srv.port);
    cleanup(() => proxy.close());
    const alice = await client('alice', proxy.wsUrl, { backoff: { baseMs: 100, capMs: 500 } });
    const bob = await client('bob', srv.wsUrl);
    await alice.join('r');
    await bob.join('r');

    proxy.cutAfterNextClientWrite(); // the send reaches the server; its ack never reaches alice
    const p = alice.send('r', { text: 'once' });
    const ack = await p;
    assert.equal(proxy.cuts(), 1);
    assert.ok(alice.rec.statuses.some((s) => s.state === 'reconnecting'), 'alice reconnected');
    await alice.send('r', { text: 'next' });
    await waitFor(() => bob.texts('r').length === 2);
    await sleep(200);
    assert.deepEqual(bob.texts('r'), ['once', 'next']);
    assert.deepEqual(alice.texts('r'), ['once', 'next']);
    assert.equal(bob.rec.messages[0].seq, ack.seq);
    // Alice saw her message in the replay after rejoining, tied to her send.
    assert.equal(alice.rec.messages[0].meta.source, 'recovery');
    assert.equal(alice.rec.messages[0].meta.id, p.id);
  });

  test('a client that lost its connection recovers the missed messages on rejoin', async () => {
    const srv = await server();
    const proxy = await startProxy(srv.port);
    cleanup(() => proxy.close());
    const alice = await client('alice', srv.wsUrl);
    const bob = await client('bob', proxy.wsUrl, { backoff: { baseMs: 50, capMs: 200 } });
    await alice.join('r');
    await bob.join('r');
    await alice.send('r', { text: 'm1' });
    await waitFor(() => bob.texts('r').length === 1);

    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => bob.status.state === 'reconnecting');
    for (const text of ['m2', 'm3', 'm4']) await alice.send('r', { text });
    proxy.refuse(false);
    await waitFor(() => bob.rec.recovered.length === 1, { what: 'bob recovered' });
    assert.deepEqual(bob.rec.recovered[0], { room: 'r', count: 3 });
    await alice.send('r', { text: 'm5' });
    await waitFor(() => bob.texts('r').length === 5);
    assert.deepEqual(bob.texts('r'), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.deepEqual(bob.rec.messages.map((m) => m.meta.source), ['live', 'recovery', 'recovery', 'recovery', 'live']);
    assert.equal(bob.rec.resync.length, 0);
  });

  test('a new client resumes a kept position: only the missed messages, once', async () => {
    const srv = await server();
    const alice = await client('alice', srv.wsUrl);
    const bob = await client('bob', srv.wsUrl);
    await alice.join('r');
    await bob.join('r');
    for (const text of ['m1', 'm2']) await bob.send('r', { text });
    await waitFor(() => alice.texts('r').length === 2);
    const kept = alice.position('r');
    assert.equal(kept.since, 2);
    alice.close(); // a page reload
    for (const text of ['m3', 'm4']) await bob.send('r', { text });

    const again = await client('alice', srv.wsUrl);
    await again.join('r', kept);
    await waitFor(() => again.rec.recovered.length === 1, { what: 'recovered' });
    assert.deepEqual(again.rec.recovered[0], { room: 'r', count: 2 });
    assert.deepEqual(again.texts('r'), ['m3', 'm4']);
    assert.deepEqual(again.rec.messages.map((m) => m.meta.source), ['recovery', 'recovery']);
    assert.deepEqual(again.position('r'), { since: 4, epoch: kept.epoch });

    // A position from another epoch (the server lost the room's history) is
    // not trusted: the client reloads the room's history instead.
    const stale = await client('alice', srv.wsUrl);
    await stale.join('r', { since: 2, epoch: 'not-this-one' });
    await waitFor(() => stale.rec.resync.length === 1, { what: 'resync' });
    assert.equal(stale.rec.resync[0].epochChanged, true);
    assert.deepEqual(stale.texts('r'), ['m1', 'm2', 'm3', 'm4']);
  });

  test('the client paces a burst of sends below the server rate limit', async () => {
    const srv = await server();
    const alice = await client('alice', srv.wsUrl);
    await alice.join('r');
    const acks = await Promise.all(Array.from({ length: 60 }, (_, i) => alice.send('r', { text: `m${i}` })));
    assert.equal(new Set(acks.map((a) => a.seq)).size, 60);
    assert.deepEqual(alice.rec.errors, []);
  });
});
