// A recording wrapper around the client library for node tests.
import WebSocket from 'ws';

import { connect } from '../../switchboard.js';
import { waitFor } from './server.mjs';

/** CountingWebSocket is the ws package's WebSocket counting the messages
 * that carried several frames joined by '\n'. */
export class CountingWebSocket extends WebSocket {
  static batched = 0;
  constructor(...args) {
    super(...args);
    this.on('message', (data, isBinary) => {
      if (!isBinary && String(data).includes('\n')) CountingWebSocket.batched++;
    });
  }
}

/**
 * open connects `name` to url and records what the client emits: messages
 * (with meta), dms, statuses, typing, member events, recoveries and errors.
 * It resolves once the client is connected.
 */
export async function open(name, url, opts = {}) {
  const c = connect({ url, name, WebSocket, ...opts });
  const rec = { messages: [], dms: [], statuses: [], typing: [], members: [], recovered: [], resync: [], errors: [], joined: [] };
  c.on('message', (m, meta) => rec.messages.push({ ...m, meta }));
  c.on('dm', (m, meta) => rec.dms.push({ ...m, meta }));
  c.on('status', (s) => rec.statuses.push(s));
  c.on('typing', (e) => rec.typing.push(e));
  c.on('members', (e) => rec.members.push(e));
  c.on('recovered', (e) => rec.recovered.push(e));
  c.on('resync', (e) => rec.resync.push(e));
  c.on('error', (e) => rec.errors.push(e));
  c.on('joined', (e) => rec.joined.push(e));
  c.rec = rec;
  /** texts returns the text of every message received in room, in order. */
  c.texts = (room) => rec.messages.filter((m) => m.room === room).map((m) => m.data.text);
  await waitFor(() => c.status.state === 'connected', { what: `${name} connected` });
  return c;
}
