/**
 * SwitchboardError is how every request fails. `code` is the server's error
 * code (bad_request, not_member, forbidden, not_found, offline, unavailable,
 * rate_limited, muted, banned, frozen, …; muted and banned carry `until`, unix
 * ms, when timed) or one of the client's own: timeout (no answer in time
 * while connected), disconnected (the connection dropped before the answer),
 * expired (a queued send could not be resent within the server's
 * idempotency window), too_big, left, closed, bad_frame.
 */
export class SwitchboardError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {object} [extra]  fields copied onto the error (room, …)
   */
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
    Object.assign(this, extra);
  }
}
