// Reconnect timing and outbound pacing: pure functions and a small class,
// no I/O, so that node tests can check them with a fake clock and random.

/** Default reconnect timing. */
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30000;

/**
 * backoffDelay returns how long to wait before reconnect attempt number
 * `attempt` (0 for the first retry): "full jitter", a uniformly random delay
 * in [0, min(capMs, baseMs * 2^attempt)). Spreading retries over the whole
 * window keeps a fleet of clients from reconnecting in lock step after a
 * server restart.
 *
 * @param {number} attempt   0, 1, 2, …
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [opts]
 *        baseMs default 500, capMs default 30000, random default Math.random
 * @returns {number} whole milliseconds, 0 ≤ delay < min(capMs, baseMs·2^attempt)
 */
export function backoffDelay(attempt, opts = {}) {
  const base = opts.baseMs ?? BACKOFF_BASE_MS;
  const cap = opts.capMs ?? BACKOFF_CAP_MS;
  const random = opts.random ?? Math.random;
  const n = Math.max(0, Math.min(attempt, 30)); // 2^30 · base is past any cap
  const window = Math.min(cap, base * 2 ** n);
  return Math.min(Math.floor(random() * window), Math.max(0, window - 1));
}

/** Window of the random wait before reconnecting after a restart. */
export const RESTART_JITTER_MS = 500;

/**
 * restartDelay returns how long to wait before reconnecting after the server
 * closed the connection for a restart or a shutdown (1001, 1012: the
 * "immediate" plan): a uniformly random delay in [0, jitterMs). A draining
 * node closes thousands of connections within seconds; the jitter keeps
 * their reconnects from landing on the other nodes in the same millisecond.
 *
 * @param {{jitterMs?: number, random?: () => number}} [opts]
 *        jitterMs default 500, random default Math.random
 * @returns {number} whole milliseconds, 0 ≤ delay < jitterMs
 */
export function restartDelay(opts = {}) {
  const jitter = opts.jitterMs ?? RESTART_JITTER_MS;
  const random = opts.random ?? Math.random;
  return Math.min(Math.floor(random() * jitter), Math.max(0, jitter - 1));
}

/**
 * What to do after the connection closed with a WebSocket close code:
 * - "immediate": the server is restarting or draining (1001, 1012): retry
 *   almost at once, after restartDelay's jitter (the client still backs off
 *   if the retry fails);
 * - "slow": the server dropped us for reading too slowly (1013): back off
 *   from a larger window;
 * - "stop": policy violation, expired token, kicked (1008, 4001, 4003):
 *   retrying would only loop, so stay offline until the app says otherwise;
 * - "backoff": anything else (1006 lost connection, 1009, 1011, …).
 *
 * @param {number} code
 * @returns {"immediate"|"slow"|"stop"|"backoff"}
 */
export function reconnectPlan(code) {
  switch (code) {
    case 1001:
    case 1012:
      return 'immediate';
    case 1013:
      return 'slow';
    case 1008:
    case 4001:
    case 4003:
      return 'stop';
    default:
      return 'backoff';
  }
}

/** Default number of consecutive refused connections before the client
 * asks over HTTP why (see probeDue). */
export const PROBE_AFTER = 3;

/**
 * probeDue reports whether the client should ask over HTTP why its
 * WebSocket closed before it opened, after `failures` such closes in a row
 * (1, 2, …): at the `after`-th, then at twice, four times … that number
 * (3, 6, 12, 24 … by default). A browser logs every failed request to the
 * console, and in an ordinary outage (the server down or restarting) the
 * answer is always "nothing there"; a refusal that retrying cannot cure (a
 * bad name, an expired token) still comes to light within a few attempts.
 *
 * @param {number} failures  consecutive closes before open, 1 for the first
 * @param {number} [after]   default PROBE_AFTER; 1 probes at 1, 2, 4, 8 …
 * @returns {boolean}
 */
export function probeDue(failures, after = PROBE_AFTER) {
  const n = Math.max(1, Math.floor(after));
  if (!Number.isSafeInteger(failures) || failures < n || failures % n !== 0) return false;
  const k = failures / n;
  return (k & (k - 1)) === 0;
}

/**
 * TokenBucket paces outbound frames below the server's per-connection rate
 * limit (20 frames/s, burst 40 by default), so that rejoining many rooms and
 * resending queued messages after a reconnect is not answered with
 * rate_limited. It holds `burst` tokens and refills `perSecond` a second.
 */
export class TokenBucket {
  /**
   * @param {{perSecond?: number, burst?: number}} [opts] defaults 15 and 30
   * @param {number} now  current time in ms
   */
  constructor(opts = {}, now = 0) {
    this.perSecond = opts.perSecond ?? 15;
    this.burst = opts.burst ?? 30;
    this.tokens = this.burst;
    this.at = now;
  }

  /**
   * take spends one token if there is one and returns 0; otherwise it spends
   * nothing and returns how many ms until a token is available.
   * @param {number} now
   */
  take(now) {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }
}
