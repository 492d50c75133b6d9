// Tests of edit and delete in the client library: against a scripted fake
// server (ordering with messages, gap filling, errors) and the real server.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';

import WebSocket from 'ws';

import { connect } from '../switchboard.js';
import { open } from './helpers/clients.mjs';
import { fakeServers } from './helpers/fake.mjs';
import { serverBinary, startServer, waitFor } from './helpers/server.mjs';

const fakes = fakeServers();
const clients = [];
afterEach(() => fakes.closeAll());
after(async () => {
  for (const c of clients) c.close();
});

/** fake starts a fake server that greets each connection as alice. */
const fake = (onFrame) => fakes.start('alice', onFrame);

/** record lists what c emits for the room stream as [event, seq, target?, source]. */
function record(c) {
  const got = [];
  c.on('message', (m, meta) => got.push(['message', m.seq, meta.source]));
  for (const ev of ['message_edited', 'message_deleted']) {
    c.on(ev, (m, meta) => got.push([ev, m.seq, m.target, meta.source]));
  }
  return got;
}

const msg = (seq) => ({ type: 'message', room: 'r', seq, from: 'alice', data: { text: `m${seq}` }, ts: 1 });
const edited = (seq, target) => ({ type: 'message_edited', room: 'r', seq, target, from: 'alice', data: { text: 'x' }, ts: 1 });
const deleted = (seq, target) => ({ type: 'message_deleted', room: 'r', seq, target, from: 'alice', ts: 1 });

describe('edit and delete, scripted server', () => {
  test('changes are stream entries: in seq order with messages, a gap filled from history', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') {
        ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice'], seq: 0, epoch: 'e1' }, msg(1), edited(2, 1));
        setTimeout(() => ws.out(deleted(4, 1)), 20); // 3 is missing
      }
      if (f.type === 'history') ws.out({ type: 'history', id: f.id, room: 'r', epoch: 'e1', messages: [edited(3, 1)] });
    });
    const c = connect({ url: srv.url, name: 'alice', WebSocket });
    clients.push(c);
    const got = record(c);
    await c.join('r');
    await waitFor(() => got.length === 4, { what: 'four entries' });
    assert.deepEqual(got, [
      ['message', 1, 'live'],
      ['message_edited', 2, 1, 'live'],
      ['message_edited', 3, 1, 'history'],
      ['message_deleted', 4, 1, 'live'],
    ]);
  });

  test('edit and delete send their frame with an id and settle on ack or error', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'join') ws.out({ type: 'joined', id: f.id, room: 'r', members: ['alice'], seq: 1, epoch: 'e1' });
      if (f.type === 'edit') ws.out({ type: 'ack', id: f.id, seq: 2, epoch: 'e1' });
      if (f.type === 'delete') ws.out({ type: 'error', id: f.id, code: 'not_found', message: 'no such message' });
    });
    const c = connect({ url: srv.url, name: 'alice', WebSocket });
    clients.push(c);
    await c.join('r');
    assert.deepEqual(await c.edit('r', 1, { text: 'fixed' }, { id: 'e1' }), { id: 'e1', seq: 2, epoch: 'e1' });
    await assert.rejects(c.delete('r', 7), { code: 'not_found' });
    const sent = srv.frames.filter((f) => f.type === 'edit' || f.type === 'delete');
    assert.deepEqual(sent[0], { type: 'edit', room: 'r', seq: 1, data: { text: 'fixed' }, id: 'e1' });
    assert.equal(sent[1].type, 'delete');
    assert.equal(sent[1].seq, 7);
    assert.ok(sent[1].id);
    await assert.rejects(c.edit('r', 0, 'x'), { code: 'bad_request' });
    await assert.rejects(c.edit('r', 1, null), { code: 'bad_request' });
  });
});

describe('edit and delete, live server', () => {
  serverBinary();
  test('the sender edits and deletes; others see it and are refused', async () => {
    const srv = await startServer();
    after(() => srv.stop('SIGKILL'));
    const alice = await open('alice', srv.wsUrl);
    const bob = await open('bob', srv.wsUrl);
    clients.push(alice, bob);
    const got = record(bob);
    await alice.join('lobby');
    await bob.join('lobby');
    const sent = await alice.send('lobby', { text: 'helo' });
    const e = await alice.edit('lobby', sent.seq, { text: 'hello' });
    assert.equal(e.seq, sent.seq + 1);
    await assert.rejects(bob.edit('lobby', sent.seq, { text: 'mine' }), { code: 'forbidden' });
    await assert.rejects(bob.delete('lobby', sent.seq), { code: 'forbidden' });
    const d = await alice.delete('lobby', sent.seq);
    assert.equal(d.seq, sent.seq + 2);
    await assert.rejects(alice.edit('lobby', sent.seq, { text: 'again' }), { code: 'not_found' });
    await waitFor(() => got.length === 3, { what: 'bob sees the message, the edit and the delete' });
    assert.deepEqual(got, [
      ['message', sent.seq, 'live'],
      ['message_edited', e.seq, sent.seq, 'live'],
      ['message_deleted', d.seq, sent.seq, 'live'],
    ]);
    const page = await bob.history('lobby');
    assert.deepEqual(page.messages.map((m) => m.type), ['message', 'message_edited', 'message_deleted']);
  });
});
