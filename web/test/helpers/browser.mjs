// Shared setup of the browser end-to-end tests: the servers of a topology,
// one Chromium, users signed in to the demo chat, and a watch on every
// page's console.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';

import { redisAvailable, repoRoot, serverBinary, startRedis, startServer } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const OUT = path.join(repoRoot, 'test-output');

/**
 * cluster starts the servers of a topology. alice and bob are the nodes the
 * two users load the page from (the same node for "one-node").
 */
export async function cluster(topology) {
  serverBinary();
  if (topology === 'auto') {
    if (!redisAvailable()) {
      if (process.env.CI === 'true') throw new Error('redis-server is missing and CI=true: apt-get install -y redis-server');
      console.log('E2E topology: one-node, as redis-server is not installed');
      return cluster('one-node');
    }
    try {
      return await cluster('two-nodes');
    } catch (err) {
      if (!/redis-url is not supported/.test(err.message)) throw err;
      console.log('E2E topology: one-node, as this server does not support --redis-url yet');
      return cluster('one-node');
    }
  }
  if (topology === 'one-node') {
    const node = { srv: await startServer({ nodeId: 'node-a' }) };
    return {
      topology,
      alice: node,
      bob: node,
      nodes: [node],
      stop: async () => node.srv.stop('SIGKILL'),
    };
  }
  if (topology !== 'two-nodes') throw new Error(`E2E_TOPOLOGY must be one-node or two-nodes, not ${topology}`);
  const redis = await startRedis();
  let a;
  let b;
  try {
    a = { srv: await startServer({ nodeId: 'node-a', redisUrl: redis.url }) };
    b = { srv: await startServer({ nodeId: 'node-b', redisUrl: redis.url }) };
  } catch (err) {
    await a?.srv.stop('SIGKILL');
    await redis.stop();
    throw err;
  }
  return {
    topology,
    alice: a,
    bob: b,
    nodes: [a, b],
    redisUrl: redis.url,
    stop: async () => {
      await Promise.all([a.srv.stop('SIGKILL'), b.srv.stop('SIGKILL')]);
      await redis.stop();
    },
  };
}

/** What Chromium logs by itself while a server is unreachable: the failed
 * WebSocket, and the client's occasional HTTP probe of why it failed. */
const OUTAGE_NOISE = /WebSocket connection to .* failed|Failed to load resource: net::ERR_(CONNECTION_[A-Z_]+|SOCKET_NOT_CONNECTED|EMPTY_RESPONSE)/;

/**
 * e2eSuite registers body's tests with a shared setup, or a skip (a failure
 * under CI=true) without chromium. body gets the fixture e:
 * - e.servers: the cluster; e.browser
 * - e.user(name, node, {room, viewport}): a page signed in and connected
 * - e.open(node, {viewport}): a page at the sign-in form
 * - e.problems: console errors and warnings, page errors and dialogs of
 *   every page; e.outage(fn) runs fn as an outage, during which the noise
 *   of an unreachable server is expected
 */
export function e2eSuite(body) {
  if (!fs.existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') {
      test('chromium is installed', () => assert.fail(`${CHROMIUM} is missing: apt-get install -y chromium`));
    } else {
      test('browser end-to-end', { skip: `${CHROMIUM} is missing (apt-get install -y chromium)` }, () => {});
    }
    return;
  }
  const e = { servers: null, browser: null, problems: [], contexts: [] };
  let outages = 0;

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const playwright = await import('playwright-core');
    e.servers = await cluster(process.env.E2E_TOPOLOGY || 'auto');
    // Playwright gives every launch a fresh temporary user-data-dir and
    // deletes it on close.
    e.browser = await playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterEach(async () => {
    await Promise.all(e.contexts.map((c) => c.close()));
    e.contexts = [];
  });

  after(async () => {
    await e.browser?.close();
    await e.servers?.stop();
  });

  /** watch records what a page logs that a user would not want logged. */
  e.watch = (page, name) => {
    page.on('pageerror', (err) => e.problems.push(`${name}: ${err.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warning') return;
      if (outages > 0 && OUTAGE_NOISE.test(m.text())) return;
      e.problems.push(`${name}: console ${m.type()}: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      e.problems.push(`${name}: unexpected dialog ${d.message()}`);
      d.dismiss();
    });
    return page;
  };

  e.outage = async (fn) => {
    outages++;
    try {
      return await fn();
    } finally {
      outages--;
    }
  };

  e.open = async (node, { viewport = { width: 1280, height: 800 }, name = 'page' } = {}) => {
    const context = await e.browser.newContext({ viewport, deviceScaleFactor: 1 });
    e.contexts.push(context);
    const page = e.watch(await context.newPage(), name);
    await page.goto(`${node.base ?? node.srv.base}/`);
    return page;
  };

  e.user = async (name, node, { room = 'e2e', viewport } = {}) => {
    const page = await e.open(node, { viewport, name });
    await page.fill('#login-name', name);
    await page.fill('#login-room', room);
    await page.press('#login-name', 'Enter');
    await connected(page);
    await page.waitForSelector(`#room-list [data-room="${room}"].active`, { state: 'attached' });
    return page;
  };

  body(e);
}

/** connected waits until page is connected (the sidebar with the status
 * may be off screen on a phone). */
export const connected = (page, timeout = 30000) => page.waitForSelector('#conn[data-state="connected"]', { state: 'attached', timeout });

export const say = async (page, text) => {
  await page.fill('#compose', text);
  await page.press('#compose', 'Enter');
};

/** texts returns the texts of the messages shown in the open room. */
export const texts = (page) => page.$$eval('#messages li.msg .text', (els) => els.map((e) => e.textContent));

export const waitText = (page, sel, text) =>
  page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent === t), [sel, text]);

export const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });
