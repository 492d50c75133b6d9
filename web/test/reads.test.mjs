// Tests of read positions in the client library: against a scripted fake
// server for the coalescing and the rejoin, and against the real server.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';

import WebSocket, { WebSocketServer } from 'ws';

import { connect } from '../switchboard.js';
import { open } from './helpers/clients.mjs';
import { serverBinary, sleep, startServer, waitFor } from './helpers/server.mjs';

serverBinary(); // build before the first test's clock starts

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

/** fake starts a WebSocketServer that greets every connection with a
 * welcome, records the client frames and hands them to onFrame. */
async function fake(onFrame) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.on('listening', r));
  servers.push(wss);
  const state = { connections: 0, frames: [], sockets: [] };
  wss.on('connection', (ws) => {
    const n = ++state.connections;
    state.sockets.push(ws);
    ws.out = (...frames) => ws.send(frames.map((f) => JSON.stringify(f)).join('\n'));
    ws.out({ type: 'welcome', session: `s${n}`, user: 'alice', node: `fake${n}`, protocol: 1 });
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      state.frames.push({ n, ...f });
      onFrame(f, ws, n);
    });
  });
  state.url = `ws://127.0.0.1:${wss.address().port}/ws`;
  state.reads = () => state.frames.filter((f) => f.type === 'read').map((f) => f.seq);
  return state;
}

function client(url, opts = {}) {
  const c = connect({ url, name: 'alice', WebSocket, backoff: { baseMs: 20, capMs: 100 }, ...opts });
  c.events = { read: [], unread: [] };
  c.on('read', (e) => c.events.read.push(e));
  c.on('unread', (e) => c.events.unread.push(e));
  clients.push(c);
  return c;
}

const msg = (seq, from = 'bob') => ({ type: 'message', room: 'r', seq, from, data: { text: `m${seq}` }, ts: 1 });

describe('read positions, scripted server', () => {
  test('joined carries the read position and unread count; reads are coalesced, forward only, clamped', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice', 'bob'], seq: 10, epoch: 'e1', read_seq: 2, unread: 5, unread_capped: true });
      }
    });
    const c = client(srv.url, { readIntervalMs: 200 });
    const info = await c.join('r');
    assert.deepEqual([info.readSeq, info.unread, info.unreadCapped], [2, 5, true]);
    assert.equal(c.readSeq('r'), 2);
    assert.equal(c.unread('r'), 5);

    assert.equal(c.read('r', 3), true); // the first of an interval goes at once
    await waitFor(() => srv.reads().length === 1, { what: 'the first read' });
    assert.deepEqual(srv.reads(), [3]);
    assert.equal(c.read('r', 4), true);
    assert.equal(c.read('r', 7), true);
    assert.equal(c.read('r', 6), false); // positions only move forward
    assert.equal(c.unread('r'), 5); // short of the joined seq: the joined count stands
    await sleep(50);
    assert.deepEqual(srv.reads(), [3]); // the rest waits for the interval's end
    await waitFor(() => srv.reads().length === 2, { what: 'the coalesced read' });
    assert.deepEqual(srv.reads(), [3, 7]);

    assert.equal(c.read('r', 99), true); // beyond the newest message: the newest
    await waitFor(() => srv.reads().length === 3, { what: 'the clamped read' });
    assert.equal(srv.reads()[2], 10);
    assert.equal(c.unread('r'), 0);
    assert.equal(c.read('r', 0), false);
    assert.equal(c.read('nope', 1), false);
  });

  test('counts others’ messages after the read position and keeps what others read', async () => {
    let sock;
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        sock = ws;
        ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice', 'bob'], seq: 2, epoch: 'e1', read_seq: 2 });
      }
    });
    const c = client(srv.url);
    const info = await c.join('r');
    assert.deepEqual([info.readSeq, info.unread, info.unreadCapped], [2, 0, false]);
    sock.out(msg(3), msg(4, 'alice'), msg(5), { type: 'read', room: 'r', user: 'bob', seq: 5 }, { type: 'read', room: 'r', user: 'bob', seq: 4 });
    await waitFor(() => c.events.read.length === 1 && c.unread('r') === 2, { what: 'two unread and bob’s read' });
    assert.deepEqual(c.events.read, [{ room: 'r', user: 'bob', seq: 5 }]); // an older one is ignored
    assert.deepEqual([...c.readers('r')], [['bob', 5]]);
    c.read('r', 3);
    assert.equal(c.unread('r'), 1);
    c.read('r', 5);
    assert.equal(c.unread('r'), 0);
    assert.deepEqual(c.events.unread.at(-1), { room: 'r', readSeq: 5, unread: 0, capped: false });
  });

  test('a read made while the room rejoins goes after the joined answer, unless the server has it already', async () => {
    const readSeqs = [2, 2, 8];
    const held = [];
    const srv = await fake((f, ws, n) => {
      if (f.type !== 'join') return;
      const answer = () => ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice'], seq: 9, epoch: 'e1', read_seq: readSeqs[n - 1] });
      if (n === 1) answer();
      else held.push(answer); // the test answers the rejoin
    });
    const c = client(srv.url);
    await c.join('r');
    srv.sockets[0].terminate();
    await waitFor(() => held.length === 1, { what: 'the first rejoin' });
    assert.equal(c.read('r', 6), true);
    await sleep(50);
    assert.deepEqual(srv.reads(), []); // not before the joined answer
    held[0]();
    await waitFor(() => srv.reads().length === 1, { what: 'the read after the rejoin' });
    assert.deepEqual(srv.frames.filter((f) => f.type === 'read').map((f) => [f.n, f.seq]), [[2, 6]]);

    srv.sockets[1].terminate();
    await waitFor(() => held.length === 2, { what: 'the second rejoin' });
    assert.equal(c.read('r', 7), true);
    held[1](); // it answers read_seq 8: nothing to send
    await waitFor(() => c.readSeq('r') === 8, { what: 'the joined answer' });
    await sleep(400);
    assert.deepEqual(srv.reads(), [6]);
  });
});

describe('read positions, live server', () => {
  const stops = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  test('a read reaches the other member, and comes back in joined after a reconnect', async () => {
    const srv = await startServer();
    stops.push(() => srv.stop('SIGKILL'));
    const alice = await open('alice', srv.wsUrl);
    const bob = await open('bob', srv.wsUrl);
    stops.push(() => alice.close(), () => bob.close());
    const reads = [];
    bob.on('read', (e) => reads.push(e));
    await alice.join('lobby');
    await bob.join('lobby');
    for (const text of ['one', 'two', 'three']) await bob.send('lobby', { text });
    await waitFor(() => alice.texts('lobby').length === 3, { what: 'alice gets 3 messages' });
    assert.equal(alice.unread('lobby'), 3);
    alice.read('lobby', 2);
    alice.read('lobby', 3);
    await waitFor(() => reads.some((r) => r.seq === 3), { what: 'bob hears alice read 3' });
    assert.ok(reads.every((r) => r.room === 'lobby' && r.user === 'alice'), JSON.stringify(reads));
    assert.equal(bob.readers('lobby').get('alice'), 3);
    assert.equal(alice.unread('lobby'), 0);
    await bob.send('lobby', { text: 'four' });
    await waitFor(() => alice.unread('lobby') === 1, { what: 'one unread for alice' });
    alice.close();

    const again = await open('alice', srv.wsUrl);
    stops.push(() => again.close());
    const info = await again.join('lobby');
    assert.deepEqual([info.seq, info.readSeq, info.unread, info.unreadCapped], [4, 3, 1, false]);
    assert.equal(again.unread('lobby'), 1);
  });
});
