// Wire helpers: splitting batched server messages and making request ids.

/**
 * splitFrames splits one WebSocket message into its frames. The server may
 * join several frames with '\n' in one message (every frame is compact JSON,
 * which never contains a raw newline); empty lines are skipped.
 *
 * @param {string} text
 * @returns {string[]}
 */
export function splitFrames(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (s !== '') out.push(s);
  }
  return out;
}

/**
 * parseFrames splits and parses one WebSocket message. A line that is not a
 * JSON object with a string `type` is passed to onBad and skipped, so one bad
 * frame cannot hide the others of its batch.
 *
 * @param {string} text
 * @param {(line: string, err: Error) => void} [onBad]
 * @returns {object[]}
 */
export function parseFrames(text, onBad = () => {}) {
  const frames = [];
  for (const line of splitFrames(text)) {
    let f;
    try {
      f = JSON.parse(line);
    } catch (err) {
      onBad(line, err);
      continue;
    }
    if (f === null || typeof f !== 'object' || Array.isArray(f) || typeof f.type !== 'string') {
      onBad(line, new Error('frame is not an object with a type'));
      continue;
    }
    frames.push(f);
  }
  return frames;
}

/**
 * idGenerator returns a function that makes request ids unique to this
 * client: a random prefix and a counter, like "k3j9x2q1-17". Ids stay far
 * below the protocol's 64-character limit. The prefix keeps ids of two tabs
 * of one user apart, which matters because the server's idempotency keys are
 * per user: a repeated id is a resend.
 *
 * @param {() => string} [randomPrefix]
 * @returns {() => string}
 */
export function idGenerator(randomPrefix = defaultPrefix) {
  const prefix = randomPrefix();
  let n = 0;
  return () => `${prefix}-${(++n).toString(36)}`;
}

function defaultPrefix() {
  const bytes = new Uint8Array(8);
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => (b % 36).toString(36)).join('');
}
