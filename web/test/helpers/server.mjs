// Test helpers: build and run the real server (and redis-server) on free
// loopback ports, and a TCP proxy that can cut a connection at a chosen moment.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let built;

/** serverBinary returns $SWITCHBOARD_BIN, or builds cmd/switchboard once per
 * process into a temporary directory removed at exit. */
export function serverBinary() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN;
  if (!built) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-web-test-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    built = path.join(dir, 'switchboard');
    execFileSync('go', ['build', '-o', built, './cmd/switchboard'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return built;
}

/** freePort returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** waitFor polls fn until it returns a truthy value, or throws after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 10000, everyMs = 20, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * startServer runs the switchboard binary on 127.0.0.1:port (a free one when
 * not given) and resolves once /healthz answers. Extra flags go in args.
 * The returned handle's stop(signal) kills it and waits for the exit.
 */
export async function startServer({ port, nodeId = 'test', redisUrl, args = [] } = {}) {
  port ??= await freePort();
  // No drain delay: a SIGTERM closes the sessions (with 1012) at once.
  const argv = ['--addr', `127.0.0.1:${port}`, '--node-id', nodeId, '--log-format', 'json', '--log-level', 'warn', '--drain-delay', '0', ...args];
  if (redisUrl) argv.push('--redis-url', redisUrl);
  const proc = spawn(serverBinary(), argv, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = null;
  exited.then((e) => (gone = e));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (gone) throw new Error(`switchboard exited (${JSON.stringify(gone)}): ${log}`);
        try {
          return (await fetch(`${base}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15000, what: `switchboard on port ${port}` },
    );
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    nodeId,
    base,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    proc,
    log: () => log,
    /** stop kills the server (SIGTERM: drains, closes clients with 1012;
     * SIGINT: closes them with 1001; SIGKILL: connections just drop) and
     * waits for it to exit. */
    async stop(signal = 'SIGTERM') {
      if (!gone) proc.kill(signal);
      return exited;
    },
  };
}

/** pause stops a process with SIGSTOP and waits until every thread of it
 * is stopped (Linux), so that it answers nothing from then on. */
export async function pause(proc) {
  proc.kill('SIGSTOP');
  const dir = `/proc/${proc.pid}/task`;
  const stopped = () =>
    fs.readdirSync(dir).every((t) => {
      const stat = fs.readFileSync(`${dir}/${t}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    });
  await waitFor(stopped, { timeoutMs: 5000, everyMs: 5, what: `process ${proc.pid} to stop` });
}

/** redisAvailable reports whether redis-server is installed. */
export function redisAvailable() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** startRedis runs a throwaway redis-server (no persistence) on a free
 * port and resolves once it answers PING. */
export async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  await waitFor(() => redisPing(port), { timeoutMs: 10000, what: `redis-server on ${port}: ${log}` });
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      s.destroy();
      resolve(String(d).startsWith('+PONG'));
    });
  });
}

/**
 * startProxy forwards TCP connections from a free port to targetPort. Its
 * cutAfterNextClientWrite() arms it: the next bytes a client sends are
 * forwarded to the server, but nothing the server answers reaches the client,
 * and both sides are then closed. That reproduces a connection that dies
 * after the server acted on a request but before the reply arrived.
 */
export async function startProxy(targetPort) {
  const port = await freePort();
  const pairs = new Set();
  let armed = false;
  let cuts = 0;
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, blackhole: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => {
      upstream.write(d);
      if (armed) {
        armed = false;
        cuts++;
        pair.blackhole = true;
        setTimeout(end, 300); // long enough for the server to act and answer
      }
    });
    upstream.on('data', (d) => pair.blackhole || client.write(d));
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    cutAfterNextClientWrite() {
      armed = true;
    },
    cuts: () => cuts,
    /** dropAll closes every proxied connection at once, as a network failure would. */
    dropAll() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    /** refuse makes new connections fail (true) or pass again (false). */
    refuse(on) {
      refusing = on;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
