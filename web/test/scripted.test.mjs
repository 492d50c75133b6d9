// Tests of the client library against a scripted fake server (the ws
// package's WebSocketServer), for behaviours the real server does not show
// on demand: seq gaps, particular close codes, a peer that stops answering.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { afterEach, describe, test } from 'node:test';

import WebSocket, { WebSocketServer } from 'ws';

import { connect } from '../switchboard.js';
import { sleep, waitFor } from './helpers/server.mjs';

let servers = [];
let clients = [];
afterEach(async () => {
  for (const c of clients) c.close();
  for (const s of servers) {
    for (const ws of s.clients) ws.terminate();
    await new Promise((r) => s.close(r));
  }
  servers = [];
  clients = [];
});

/**
 * fake starts a WebSocketServer that greets every connection with a welcome
 * and hands each parsed client frame to onFrame(frame, conn, n), n counting
 * connections from 1. conn.out(...frames) sends frames batched in one message.
 */
async function fake(onFrame, onConnect = () => {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.on('listening', r));
  servers.push(wss);
  const state = { connections: 0, frames: [] };
  wss.on('connection', (ws) => {
    const n = ++state.connections;
    ws.out = (...frames) => ws.send(frames.map((f) => JSON.stringify(f)).join('\n'));
    ws.out({ type: 'welcome', session: `s${n}`, user: 'alice', node: `fake${n}`, protocol: 1 });
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      state.frames.push({ n, ...f });
      onFrame(f, ws, n);
    });
    onConnect(ws, n);
  });
  state.url = `ws://127.0.0.1:${wss.address().port}/ws`;
  return state;
}

function client(url, opts = {}) {
  const c = connect({ url, name: 'alice', WebSocket, backoff: { baseMs: 20, capMs: 100 }, ...opts });
  const rec = { messages: [], statuses: [], gaps: [], errors: [] };
  c.on('message', (m, meta) => rec.messages.push([m.seq, meta.source]));
  c.on('status', (s) => rec.statuses.push(s));
  c.on('gap', (g) => rec.gaps.push(g));
  c.on('error', (e) => rec.errors.push(e));
  c.rec = rec;
  clients.push(c);
  return c;
}

const msg = (seq, text = `m${seq}`) => ({ type: 'message', room: 'r', seq, from: 'bob', data: { text }, ts: 1 });

describe('scripted server', () => {
  test('splits batches, drops duplicates and fills a seq gap from history', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice', 'bob'], seq: 0, epoch: 'e1' }, msg(1), msg(1));
        setTimeout(() => ws.out(msg(3), msg(4)), 20); // 2 is missing
      }
      if (f.type === 'history') {
        assert.deepEqual([f.room, f.before, f.limit], ['r', 3, 1]);
        setTimeout(() => ws.out(msg(5), { type: 'history', id: f.id, room: 'r', epoch: 'e1', messages: [msg(2), msg(3)] }), 20);
      }
    });
    const c = client(srv.url);
    await c.join('r');
    await waitFor(() => c.rec.messages.length === 5, { what: 'five messages' });
    assert.deepEqual(c.rec.messages, [
      [1, 'live'],
      [2, 'history'],
      [3, 'live'],
      [4, 'live'],
      [5, 'live'],
    ]);
    assert.deepEqual(c.rec.gaps, []);
  });

  test('pages a partial member list in, applying events that crossed a page again', async () => {
    const presence = [];
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice', 'ann'], member_count: 4, members_next: 'ann', seq: 0, epoch: 'e1' });
      }
      if (f.type === 'presence') {
        presence.push([f.after, f.limit]);
        // The page was read before bob left; his member_left overtakes it.
        ws.out({ type: 'member_left', room: 'r', user: 'bob', member_count: 3 });
        ws.out({ type: 'presence', id: f.id, room: 'r', members: ['bob', 'cat'], member_count: 4 });
      }
    });
    const c = client(srv.url);
    const members = [];
    c.on('members', (m) => members.push(m));
    const info = await c.join('r');
    assert.equal(info.count, 4);
    await waitFor(() => members.at(-1)?.complete, { what: 'a complete member list' });
    assert.deepEqual(presence, [['ann', 1000]]);
    assert.deepEqual(c.members('r'), ['alice', 'ann', 'cat']);
    assert.equal(c.memberCount('r'), 3);
  });

  test('reports seqs that history no longer has as a gap', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') ws.out({ type: 'joined', id: f.id, room: 'r', members: [], seq: 0, epoch: 'e1' }, msg(1), msg(4));
      if (f.type === 'history') ws.out({ type: 'history', id: f.id, room: 'r', epoch: 'e1', messages: [msg(3)] });
    });
    const c = client(srv.url);
    await c.join('r');
    await waitFor(() => c.rec.messages.length === 3);
    assert.deepEqual(c.rec.messages.map((m) => m[0]), [1, 3, 4]);
    assert.deepEqual(c.rec.gaps, [{ room: 'r', lost: 1 }]);
  });

  test('an epoch frame restarts the room stream at seq 1', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: [], seq: 7, epoch: 'e1' }, msg(8));
        setTimeout(() => ws.out({ type: 'epoch', room: 'r', epoch: 'e2' }, msg(1), msg(2)), 20);
      }
    });
    const c = client(srv.url);
    const resyncs = [];
    c.on('resync', (r) => resyncs.push(r));
    await c.join('r');
    await waitFor(() => c.rec.messages.length === 3, { what: 'three messages' });
    assert.deepEqual(c.rec.messages.map((m) => m[0]), [8, 1, 2]);
    assert.deepEqual(resyncs, [{ room: 'r', epoch: 'e2', epochChanged: true, count: 0, lost: 0 }]);
    assert.deepEqual(c.rec.gaps, []);
  });

  test('rejoins with since and epoch after a reconnect', async () => {
    const srv = await fake((f, ws, n) => {
      if (f.type !== 'join') return;
      if (n === 1) {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: [], seq: 1, epoch: 'e1' }, msg(2), msg(3));
        setTimeout(() => ws.close(1012, 'restart'), 20);
      } else {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: [], seq: 5, epoch: 'e1', recovered: true }, msg(4), msg(5));
      }
    });
    const c = client(srv.url);
    const recovered = [];
    c.on('recovered', (e) => recovered.push(e));
    await c.join('r');
    await waitFor(() => recovered.length === 1, { what: 'recovered' });
    const joins = srv.frames.filter((f) => f.type === 'join');
    assert.deepEqual(joins.map(({ n, room, since, epoch }) => ({ n, room, since, epoch })), [
      { n: 1, room: 'r', since: undefined, epoch: undefined },
      { n: 2, room: 'r', since: 3, epoch: 'e1' },
    ]);
    assert.deepEqual(recovered, [{ room: 'r', count: 2 }]);
    assert.deepEqual(c.rec.messages, [
      [2, 'live'],
      [3, 'live'],
      [4, 'recovery'],
      [5, 'recovery'],
    ]);
    const r = c.rec.statuses.find((s) => s.state === 'reconnecting');
    assert.equal(r.code, 1012);
    assert.ok(r.inMs >= 0 && r.inMs < 500, `1012 is retried within the 500 ms jitter, not after ${r.inMs} ms`);
  });

  for (const code of [1001, 1012]) {
    test(`reconnects after close code ${code} at once but for a random jitter below 500 ms`, async () => {
      const srv = await fake(() => {}, (ws, n) => n === 1 && setTimeout(() => ws.close(code, 'restart'), 20));
      const c = client(srv.url, { backoff: { baseMs: 20, capMs: 100, random: () => 0.999999 } });
      await waitFor(() => srv.connections === 2, { what: 'reconnected' });
      const r = c.rec.statuses.find((s) => s.state === 'reconnecting');
      assert.deepEqual([r.code, r.inMs, r.attempt], [code, 499, 1], 'the top of the jitter window, not the backoff window');
    });
  }

  test('a left the server sends unasked takes the client out of the room', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') ws.out({ type: 'joined', id: f.id, room: f.room, members: ['alice'], seq: 0, epoch: 'e1' });
      if (f.type === 'refresh') {
        ws.out({ type: 'left', room: 'b', reason: 'forbidden' }, { type: 'refreshed', id: f.id, exp: 1 });
        setTimeout(() => ws.close(1012, 'restart'), 20);
      }
    });
    const c = client(srv.url);
    await c.join('a');
    await c.join('b');
    c.write({ type: 'refresh', token: 't', id: 'r1' });
    await waitFor(() => c.rec.errors.length === 1, { what: 'an error for the room' });
    assert.deepEqual([c.rec.errors[0].code, c.rec.errors[0].room], ['forbidden', 'b']);
    assert.deepEqual(c.joinedRooms(), ['a']);
    await waitFor(() => srv.connections === 2 && srv.frames.some((f) => f.n === 2 && f.type === 'join'), { what: 'rejoin' });
    await sleep(50);
    assert.deepEqual(srv.frames.filter((f) => f.n === 2 && f.type === 'join').map((f) => f.room), ['a'], 'b is not rejoined');
  });

  for (const code of [4003, 4001, 1008]) {
    test(`stays offline after close code ${code}`, async () => {
      const srv = await fake(() => {}, (ws) => setTimeout(() => ws.close(code, 'go away'), 20));
      const c = client(srv.url);
      await waitFor(() => c.status.state === 'offline', { what: 'offline' });
      assert.equal(c.status.code, code);
      await sleep(300);
      assert.equal(srv.connections, 1, 'no reconnect loop');
      c.reconnectNow(); // the app may try again, e.g. with a fresh token
      await waitFor(() => srv.connections === 2);
    });
  }

  test('backs off after 1013 and after a refused connection', async () => {
    const srv = await fake(() => {}, (ws, n) => n === 1 && setTimeout(() => ws.close(1013, 'too slow'), 20));
    const c = client(srv.url, { backoff: { baseMs: 10, capMs: 10000 } });
    await waitFor(() => srv.connections === 2 && c.status.state === 'connected', { what: 'reconnected' });
    const r = c.rec.statuses.find((s) => s.state === 'reconnecting');
    assert.equal(r.code, 1013);
    assert.equal(r.attempt, 4, '1013 starts from a wider backoff window');

    const dead = client('ws://127.0.0.1:1/ws');
    await waitFor(() => dead.rec.statuses.filter((s) => s.state === 'reconnecting').length >= 3, { what: 'retries' });
    const delays = dead.rec.statuses.filter((s) => s.state === 'reconnecting').map((s) => s.inMs);
    assert.ok(delays.every((d, i) => d < Math.min(100, 20 * 2 ** i)), `delays ${delays}`);
  });

  test('asks over HTTP why upgrades fail only after three refusals in a row', async () => {
    // A server that refuses every upgrade as an expired token, as the real
    // one does, and counts the plain GETs of the client's probe.
    let upgrades = 0;
    let probes = 0;
    const http = createServer((req, res) => {
      probes++;
      res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"token expired"}}');
    });
    http.on('upgrade', (req, socket) => {
      upgrades++;
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    });
    await new Promise((r) => http.listen(0, '127.0.0.1', r));
    try {
      const c = client(`ws://127.0.0.1:${http.address().port}/ws`, { backoff: { baseMs: 10, capMs: 20 } });
      await waitFor(() => c.status.state === 'offline', { what: 'offline after the probe' });
      assert.equal(c.status.code, 4001);
      assert.equal(c.status.reason, 'token expired');
      assert.equal(upgrades, 3);
      assert.equal(probes, 1, 'one probe, after the third refusal');
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  test('drops a connection whose server stops answering pings', async () => {
    const srv = await fake((f, ws, n) => {
      if (f.type === 'ping' && n > 1) ws.out({ type: 'pong', id: f.id });
    });
    const c = client(srv.url, { heartbeatMs: 100, requestTimeoutMs: 100 });
    await waitFor(() => srv.connections === 2, { what: 'reconnect after a silent ping' });
    const r = c.rec.statuses.find((s) => s.state === 'reconnecting');
    assert.equal(r.reason, 'heartbeat timeout');
  });

  test('fails requests in flight when the connection drops, and keeps sends for the next one', async () => {
    let sends = 0;
    const srv = await fake((f, ws, n) => {
      if (f.type === 'join') ws.out({ type: 'joined', id: f.id, room: 'r', members: [], seq: 0, epoch: 'e1', ...(n > 1 && { recovered: true }) });
      if (f.type === 'history' && n === 1) ws.terminate();
      if (f.type === 'send') {
        sends++;
        if (n === 1) return; // no answer: the connection drops first
        ws.out({ ...msg(1, f.data.text), from: 'alice' }, { type: 'ack', id: f.id, seq: 1 });
      }
    });
    const c = client(srv.url);
    await c.join('r');
    const sent = c.send('r', { text: 'hello' });
    await waitFor(() => sends === 1);
    await assert.rejects(c.history('r'), { code: 'disconnected' });
    assert.deepEqual(await sent, { id: sent.id, seq: 1, epoch: 'e1' });
    const ids = srv.frames.filter((f) => f.type === 'send').map((f) => f.id);
    assert.deepEqual(ids, [sent.id, sent.id], 'resent with the same id');
  });

  test('rejects a send larger than the frame limit without sending it', async () => {
    const srv = await fake(() => {});
    const c = client(srv.url, { maxFrameBytes: 256 });
    await assert.rejects(c.send('r', { text: 'x'.repeat(300) }), { code: 'too_big' });
    await assert.rejects(c.send('r', null), { code: 'bad_request' });
    await assert.rejects(c.dm('not a name', 'x'), { code: 'bad_request' });
    c.close();
    await assert.rejects(c.send('r', 'x'), { code: 'closed' });
  });
});
