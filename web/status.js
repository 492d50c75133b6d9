// What the demo chat says about its connection: pure functions of the
// client's status event ({state, attempt, at, code, reason, node}: see
// Client in switchboard.js), no DOM, so that node tests can check them.

/** isDown reports whether a status means the connection was lost (not the
 * first connect of a page). */
export function isDown(s) {
  return s.state === 'reconnecting' || s.state === 'offline' || (s.state === 'connecting' && s.attempt > 0);
}

/** statusText is the short line of the sidebar's connection pill. */
export function statusText(s, now = Date.now()) {
  switch (s.state) {
    case 'connected':
      return `Connected to ${s.node}`;
    case 'connecting':
      return s.attempt > 0 ? 'Reconnecting…' : 'Connecting…';
    case 'reconnecting': {
      const secs = Math.ceil((s.at - now) / 1000);
      return secs > 0 ? `Reconnecting in ${secs} s` : 'Reconnecting…';
    }
    default:
      return offlineText(s.code);
  }
}

/** bannerText is the headline of the banner shown while disconnected; an
 * offline status carries the server's reason when it gave one. */
export function bannerText(s, now = Date.now()) {
  if (s.state === 'offline') return `${offlineText(s.code)}${s.reason && s.code !== 1000 ? ` (${s.reason})` : ''}`;
  const secs = s.state === 'reconnecting' ? Math.ceil((s.at - now) / 1000) : 0;
  return secs > 0 ? `Disconnected — reconnecting in ${secs} s` : 'Disconnected — reconnecting…';
}

/** retryLabel names the Retry action of a status: after an expired token
 * (4001) only signing in again helps. */
export function retryLabel(s) {
  if (s.state !== 'offline') return 'Retry now';
  return s.code === 4001 ? 'Sign in' : 'Reconnect';
}

function offlineText(code) {
  switch (code) {
    case 4001:
      return 'Offline: session expired';
    case 4003:
      return 'Offline: disconnected by the server';
    case 1008:
      return 'Offline: refused by the server';
    default:
      return 'Offline';
  }
}
