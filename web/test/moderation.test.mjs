// Tests of moderation in the client library: the muted, unmuted and
// room_updated events, the until of muted and banned errors, a ban's left,
// and the operator's requests, against a scripted fake server and the real
// server with op tokens minted by `switchboard token --op`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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

/** fake starts a fake server that greets each connection as bob. */
const fake = (onFrame) => fakes.start('bob', onFrame);

const joined = (f) => ({ type: 'joined', id: f.id, room: f.room, members: ['bob'], seq: 0, epoch: 'e1' });

describe('moderation, scripted server', () => {
  test('a joined answer tells the standing: muted and frozen arrive as events', async () => {
    const until = Date.now() + 60000;
    const srv = await fake((f, ws) => {
      if (f.type === 'join') ws.out({ ...joined(f), frozen: true, muted: true, muted_until: until });
    });
    const c = connect({ url: srv.url, name: 'bob', WebSocket });
    clients.push(c);
    const events = [];
    for (const ev of ['muted', 'unmuted', 'room_updated']) c.on(ev, (e) => events.push([ev, e]));
    await c.join('r');
    assert.deepEqual(events, [['muted', { room: 'r', until }], ['room_updated', { room: 'r', frozen: true }]]);
    assert.deepEqual(c.moderation('r'), { muted: true, until, frozen: true });
  });

  test('muted, unmuted and room_updated are events and state; errors carry until; a ban leaves', async () => {
    const until = Date.now() + 60000;
    let sock;
    const srv = await fake((f, ws) => {
      sock = ws;
      if (f.type === 'join') ws.out(joined(f));
      if (f.type === 'send') ws.out({ type: 'error', id: f.id, code: 'muted', message: 'you are muted', until });
    });
    const c = connect({ url: srv.url, name: 'bob', WebSocket });
    clients.push(c);
    const events = [];
    for (const ev of ['muted', 'unmuted', 'room_updated']) c.on(ev, (e) => events.push([ev, e]));
    const errors = [];
    c.on('error', (e) => errors.push(e));
    await c.join('r');
    assert.deepEqual(c.moderation('r'), { muted: false, until: 0, frozen: false });

    sock.out({ type: 'muted', room: 'r', until }, { type: 'room_updated', room: 'r', frozen: true });
    await waitFor(() => events.length === 2, { what: 'two events' });
    assert.deepEqual(events, [
      ['muted', { room: 'r', until }],
      ['room_updated', { room: 'r', frozen: true }],
    ]);
    assert.deepEqual(c.moderation('r'), { muted: true, until, frozen: true });
    await assert.rejects(c.send('r', 'x'), (err) => err.code === 'muted' && err.until === until);

    sock.out({ type: 'unmuted', room: 'r' }, { type: 'room_updated', room: 'r', frozen: false });
    await waitFor(() => events.length === 4, { what: 'four events' });
    assert.deepEqual(events[2], ['unmuted', { room: 'r' }]);
    assert.deepEqual(c.moderation('r'), { muted: false, until: 0, frozen: false });

    sock.out({ type: 'muted', room: 'r', until: Date.now() - 1 });
    await waitFor(() => events.length === 5, { what: 'a past mute' });
    assert.equal(c.moderation('r').muted, false, 'a mute whose until passed is over');

    sock.out({ type: 'left', room: 'r', reason: 'banned' });
    await waitFor(() => errors.length === 1, { what: 'the ban error' });
    assert.equal(errors[0].code, 'banned');
    assert.equal(errors[0].room, 'r');
  });

  test('an operator\'s requests send their frame and settle on ack or error', async () => {
    const srv = await fake((f, ws) => {
      if (f.type === 'freeze') return ws.out({ type: 'error', id: f.id, code: 'forbidden', message: 'not an operator' });
      ws.out({ type: 'ack', id: f.id });
    });
    const c = connect({ url: srv.url, name: 'bob', WebSocket });
    clients.push(c);
    await waitFor(() => c.connected, { what: 'connected' });
    assert.ok((await c.mute('r', 'eve', { duration: '10m' })).id);
    await c.unmute('r', 'eve');
    await c.ban('r', 'eve', { reason: 'spam' });
    await c.unban('r', 'eve');
    await c.unfreeze('r');
    await assert.rejects(c.freeze('r'), { code: 'forbidden' });
    await assert.rejects(c.mute('bad room', 'eve'), { code: 'bad_request' });
    const sent = srv.frames.map(({ id, ...f }) => (assert.ok(id), f));
    assert.deepEqual(sent, [
      { type: 'mute', room: 'r', user: 'eve', duration: '10m' },
      { type: 'unmute', room: 'r', user: 'eve' },
      { type: 'ban', room: 'r', user: 'eve', reason: 'spam' },
      { type: 'unban', room: 'r', user: 'eve' },
      { type: 'unfreeze', room: 'r' },
      { type: 'freeze', room: 'r' },
    ]);
  });
});

describe('moderation, live server', () => {
  const secret = 'moderation-test-secret-0123456789abcdef';
  const token = (user, ...args) =>
    execFileSync(serverBinary(), ['token', '--jwt-secret', secret, '--user', user, ...args]).toString().trim();

  test('an operator mutes, freezes and bans; the others see why', async () => {
    const srv = await startServer({ args: ['--jwt-secret', secret] });
    after(() => srv.stop('SIGKILL'));
    const olga = await open('olga', srv.wsUrl, { token: token('olga', '--op', 'team-*') });
    const bob = await open('bob', srv.wsUrl, { token: token('bob') });
    clients.push(olga, bob);
    const events = [];
    for (const ev of ['muted', 'unmuted', 'room_updated']) bob.on(ev, (e) => events.push([ev, e]));
    await olga.join('team-a');
    await bob.join('team-a');

    await assert.rejects(bob.mute('team-a', 'olga'), { code: 'forbidden' });
    await olga.mute('team-a', 'bob', { duration: '1h' });
    await waitFor(() => events.length === 1, { what: 'bob muted' });
    assert.equal(events[0][0], 'muted');
    assert.ok(events[0][1].until > Date.now());
    await assert.rejects(bob.send('team-a', { text: 'x' }), (err) => err.code === 'muted' && err.until === events[0][1].until);
    await olga.unmute('team-a', 'bob');
    await olga.freeze('team-a');
    await waitFor(() => bob.moderation('team-a').frozen, { what: 'bob sees the freeze' });
    assert.equal(bob.moderation('team-a').muted, false);
    await assert.rejects(bob.send('team-a', { text: 'x' }), { code: 'frozen' });
    await olga.send('team-a', { text: 'operators still write' });
    await olga.unfreeze('team-a');
    await olga.ban('team-a', 'bob', { reason: 'spam' });
    await waitFor(() => bob.rec.errors.some((e) => e.code === 'banned'), { what: 'bob banned' });
    await assert.rejects(bob.join('team-a'), { code: 'banned' });
  });
});
