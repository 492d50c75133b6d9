// Connection: one WebSocket at a time, reconnected with backoff, with paced
// writes. It knows nothing of the protocol's frames beyond text.

import { backoffDelay, probeDue, reconnectPlan, restartDelay, TokenBucket } from './backoff.js';

const OPEN = 1; // WebSocket.OPEN, the same in browsers and the ws package

/**
 * Connection owns the socket and the reconnect schedule. The owner calls
 * established() once the server greeted the connection (the welcome frame):
 * only then does a connection count as made, and a connection that stays up
 * for stableMs resets the backoff.
 *
 * Handlers:
 * - onText(text): one WebSocket message arrived
 * - onLost(code, reason): the socket is gone; called before any reconnect
 *   is scheduled, so the owner can clean up first
 * - onStatus(status): {state: "connecting", attempt} | {state:
 *   "reconnecting", inMs, at, attempt, code, reason} | {state: "offline",
 *   code, reason}
 */
export class Connection {
  /**
   * @param {{WebSocket: Function, url: () => string, connectTimeoutMs: number,
   *          backoff?: object, stableMs: number, rate?: object, probeAfter?: number}} opts
   * @param {{onText: Function, onLost: Function, onStatus: Function}} handlers
   */
  constructor(opts, handlers) {
    this.opts = opts;
    this.h = handlers;
    this.ws = null;
    this.gen = 0; // bumps when a socket is abandoned: its late events are ignored
    this.attempt = 0;
    this.refusals = 0; // sockets in a row that closed before they opened
    this.closed = false;
    this.bucket = new TokenBucket(opts.rate, Date.now());
    this.wire = [];
    this.timers = { retry: null, connect: null, stable: null, wire: null };
  }

  /** open starts a connection attempt unless one is up or the
   * connection was closed for good. */
  open() {
    if (this.closed || this.ws) return;
    clearTimeout(this.timers.retry);
    this.timers.retry = null;
    const gen = ++this.gen;
    this.h.onStatus({ state: 'connecting', attempt: this.attempt });
    let ws;
    try {
      ws = new this.opts.WebSocket(this.opts.url());
    } catch (err) {
      this.ws = {}; // so that lost() does its bookkeeping
      this.lost(1006, String(err?.message ?? err));
      return;
    }
    this.ws = ws;
    ws.onmessage = (e) => gen === this.gen && this.h.onText(typeof e.data === 'string' ? e.data : String(e.data));
    let opened = false;
    ws.onopen = () => (opened = true);
    ws.onclose = (e) => {
      if (gen !== this.gen) return;
      if (opened || e.code !== 1006) this.lost(e.code, e.reason);
      else this.refused(gen);
    };
    ws.onerror = () => {}; // a close event follows
    this.timers.connect = setTimeout(() => gen === this.gen && this.drop('connect timeout'), this.opts.connectTimeoutMs);
  }

  /** refused handles a socket that closed before it opened. A browser does
   * not show why an upgrade failed, so after a few such closes in a row
   * (probeDue) this asks the same URL over HTTP: the server answers a
   * refusal (bad name or token, foreign origin, too many connections) with
   * its status and a JSON error, which is mapped to the close code that
   * means the same thing; anything else is an outage. Probing every time
   * would put a second console error beside the browser's own on every
   * attempt of an ordinary outage. */
  async refused(gen) {
    this.refusals++;
    if (!probeDue(this.refusals, this.opts.probeAfter)) {
      this.lost(1006, '');
      return;
    }
    const verdict = await probeRefusal(this.opts.url(), this.opts.fetch ?? globalThis.fetch);
    if (gen !== this.gen) return;
    this.lost(verdict?.code ?? 1006, verdict?.reason ?? '');
  }

  /** established marks the connection as made: no connect timeout, and the
   * backoff resets once it has lasted stableMs. */
  established() {
    this.refusals = 0;
    clearTimeout(this.timers.connect);
    this.timers.connect = null;
    this.timers.stable = setTimeout(() => (this.attempt = 0), this.opts.stableMs);
  }

  /** drop abandons the socket at once (a dead peer may never finish a close
   * handshake) and handles it as a lost connection (1006). */
  drop(reason) {
    const ws = this.ws;
    if (!ws) return;
    try {
      ws.close(4000, reason);
    } catch {
      // not open yet, or already closing
    }
    this.lost(1006, reason);
  }

  lost(code, reason = '') {
    if (!this.ws) return;
    this.gen++;
    this.ws = null;
    for (const k of ['connect', 'stable', 'wire']) clearTimeout(this.timers[k]);
    Object.assign(this.timers, { connect: null, stable: null, wire: null });
    this.wire = [];
    this.h.onLost(code, reason);
    if (this.closed) return;
    const plan = reconnectPlan(code);
    if (plan === 'stop') {
      this.h.onStatus({ state: 'offline', code, reason });
      return;
    }
    let delay;
    if (plan === 'immediate' && this.attempt === 0) {
      delay = restartDelay(this.opts.backoff);
    } else {
      if (plan === 'slow') this.attempt = Math.max(this.attempt, 3);
      delay = backoffDelay(this.attempt, this.opts.backoff);
    }
    this.attempt++;
    this.h.onStatus({ state: 'reconnecting', inMs: delay, at: Date.now() + delay, attempt: this.attempt, code, reason });
    this.timers.retry = setTimeout(() => {
      this.timers.retry = null;
      this.open();
    }, delay);
  }

  /** reconnectNow skips a scheduled reconnect's wait, or reopens after an
   * "offline" stop. */
  reconnectNow() {
    if (!this.closed && !this.ws) this.open();
  }

  /** close disconnects for good with 1000. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timers.retry);
    const ws = this.ws;
    if (!ws) return;
    try {
      ws.close(1000, 'bye');
    } catch {
      // not open yet
    }
    this.lost(1000, 'closed by client');
  }

  /** send writes one text frame, paced by the token bucket; frames still
   * waiting when the socket goes are dropped. */
  send(text) {
    if (!this.ws) return;
    this.wire.push(text);
    this.pump();
  }

  pump() {
    while (this.wire.length > 0) {
      const ws = this.ws;
      if (!ws || ws.readyState !== OPEN) {
        this.wire = [];
        return;
      }
      const wait = this.bucket.take(Date.now());
      if (wait > 0) {
        this.timers.wire ??= setTimeout(() => {
          this.timers.wire = null;
          this.pump();
        }, wait);
        return;
      }
      ws.send(this.wire.shift());
    }
  }
}

/**
 * probeRefusal GETs a WebSocket URL over HTTP and, when the server refuses it
 * with a JSON error, returns the close code with the same meaning and the
 * server's message: 401 → 4001 (credentials: do not retry), 400 and 403 →
 * 1008 (policy: do not retry), 429 and 503 → 1013 (retry slowly). It
 * returns null when there is no such answer (the server is down).
 */
export async function probeRefusal(wsURL, fetchFn) {
  if (typeof fetchFn !== 'function') return null;
  const httpURL = wsURL.replace(/^ws(s?):/, 'http$1:');
  const codes = { 400: 1008, 401: 4001, 403: 1008, 429: 1013, 503: 1013 };
  try {
    const res = await fetchFn(httpURL, { cache: 'no-store' });
    const code = codes[res.status];
    if (!code) return null;
    const body = await res.json();
    return { code, reason: String(body?.error?.message ?? res.status) };
  } catch {
    return null;
  }
}
