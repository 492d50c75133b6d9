// Browser end-to-end test of the demo chat: playwright-core driving Debian's
// chromium against real servers started here.
//
//   node --test web/test/browser.e2e.mjs
//
// E2E_TOPOLOGY picks the servers: "two-nodes" puts alice and bob on two
// nodes sharing one redis-server and restarts bob's node; "one-node" runs one
// in-memory server and restarts it; "auto" (the default) is two-nodes, or
// one-node while the server answers --redis-url with "not supported" or
// (not under CI=true) redis-server is not installed. CHROMIUM_PATH overrides
// /usr/bin/chromium. Without chromium the test is skipped, except with
// CI=true, where it fails. Screenshots go to test-output/; with
// UPDATE_SCREENSHOT=1 the README's picture docs/screenshot.png is rewritten.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';

import { redisAvailable, repoRoot, serverBinary, startRedis, startServer } from './helpers/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TOPOLOGY = process.env.E2E_TOPOLOGY || 'auto';
const OUT = path.join(repoRoot, 'test-output');
const XSS = '<img src=x onerror=alert(1)>';

if (!fs.existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') {
    test('chromium is installed', () => assert.fail(`${CHROMIUM} is missing: apt-get install -y chromium`));
  } else {
    test('browser end-to-end', { skip: `${CHROMIUM} is missing (apt-get install -y chromium)` }, () => {});
  }
} else {
  suite();
}

/**
 * cluster starts the servers of a topology. alice and bob are the nodes the
 * two users load the page from (the same node for "one-node"); restartBob
 * kills bob's node and returns a function that starts it again on its port.
 */
async function cluster(topology) {
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

function suite() {
  let playwright;
  let browser;
  let servers;
  let contexts = [];
  const pageErrors = [];

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    playwright = await import('playwright-core');
    servers = await cluster(TOPOLOGY);
    // Playwright gives every launch a fresh temporary user-data-dir and
    // deletes it on close.
    browser = await playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterEach(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    contexts = [];
  });

  after(async () => {
    await browser?.close();
    await servers?.stop();
  });

  /** user opens the chat on node as name, in room, and waits until connected. */
  async function user(name, node, { room = 'e2e', viewport = { width: 1280, height: 800 } } = {}) {
    const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
    page.on('console', (m) => {
      // While a node restarts Chromium logs the refused WebSocket
      // connections, and the client's HTTP probe of why they failed.
      const expected = /WebSocket connection to .* failed|Failed to load resource: net::ERR_CONNECTION_REFUSED/;
      if (m.type() === 'error' && !expected.test(m.text())) pageErrors.push(`${name}: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      pageErrors.push(`${name}: unexpected dialog ${d.message()}`);
      d.dismiss();
    });
    await page.goto(`${node.srv.base}/`);
    await page.fill('#login-name', name);
    await page.fill('#login-room', room);
    await page.press('#login-name', 'Enter');
    await page.waitForSelector('#conn[data-state="connected"]');
    await page.waitForSelector(`#room-list [data-room="${room}"].active`);
    return page;
  }

  const say = async (page, text) => {
    await page.fill('#compose', text);
    await page.press('#compose', 'Enter');
  };
  const texts = (page) => page.$$eval('#messages li.msg .text', (els) => els.map((e) => e.textContent));
  const waitText = (page, sel, text) =>
    page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent === t), [sel, text]);
  const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });

  test('chat, typing, members, DMs, XSS and a node restart', { timeout: 120000 }, async (t) => {
    t.diagnostic(`topology: ${servers.topology}`);
    const alice = await user('alice', servers.alice);
    const bob = await user('bob', servers.bob);
    if (servers.topology === 'two-nodes') {
      assert.match(await alice.textContent('#conn-text'), /node-a/);
      assert.match(await bob.textContent('#conn-text'), /node-b/);
    }

    // Member lists update on both sides.
    await alice.waitForSelector('#member-list [data-user="bob"]');
    await bob.waitForSelector('#member-list [data-user="alice"]');
    assert.equal(await alice.textContent('#member-count'), '2');

    // A message from alice appears for bob, with author and time.
    await say(alice, 'Hello bob');
    await waitText(bob, '#messages .text', 'Hello bob');
    assert.equal(await bob.getAttribute('#messages li.msg.theirs', 'data-from'), 'alice');
    assert.match(await bob.textContent('#messages li.msg.theirs time'), /\d/);
    await alice.waitForSelector('#messages li.msg.mine:not(.pending)');

    // Typing shows for the other side.
    await bob.locator('#compose').pressSequentially('hmm', { delay: 30 });
    await alice.waitForFunction(() => document.getElementById('typing').textContent === 'bob is typing…');
    await bob.fill('#compose', '');

    // DMs: bob clicks alice in the member list.
    await bob.click('#member-list [data-user="alice"]');
    await bob.waitForSelector('#dm-pane:not([hidden])');
    await bob.fill('#dm-compose', 'psst, just between us');
    await bob.press('#dm-compose', 'Enter');
    await alice.waitForSelector('#dm-list [data-peer="bob"] .badge');
    assert.equal(await alice.textContent('#dm-list [data-peer="bob"] .badge'), '1');
    await alice.click('#dm-list [data-peer="bob"]');
    await waitText(alice, '#dm-messages .text', 'psst, just between us');
    await alice.fill('#dm-compose', 'got it');
    await alice.press('#dm-compose', 'Enter');
    await waitText(bob, '#dm-messages .text', 'got it');
    assert.equal(await alice.$$eval('#dm-messages .text', (e) => e.length), 2, 'each DM shown once');
    await alice.click('#dm-close');

    // An HTML payload is shown as text on both sides and creates no element.
    await say(alice, XSS);
    await waitText(bob, '#messages .text', XSS);
    await waitText(alice, '#messages .text', XSS);
    for (const page of [alice, bob]) {
      assert.equal(await page.$$eval('img', (e) => e.length), 0);
      const last = await page.$$eval('#messages li.msg .text', (els) => ({ text: els.at(-1).textContent, html: els.at(-1).innerHTML }));
      assert.equal(last.text, XSS);
      assert.equal(last.html, '&lt;img src=x onerror=alert(1)&gt;');
    }

    await say(alice, 'before restart');
    await waitText(bob, '#messages .text', 'before restart');
    await shot(alice, 'alice.png');
    await shot(bob, 'bob.png');

    // Restart bob's node on the same port. Bob's badge counts down; alice
    // keeps talking (on her own node, or into her outbox on a shared one).
    const port = servers.bob.srv.port;
    const redisUrl = servers.redisUrl;
    await servers.bob.srv.stop('SIGTERM');
    await bob.waitForSelector('#conn[data-state="reconnecting"]');
    assert.match(await bob.textContent('#conn-text'), /^Reconnecting/);
    await say(alice, 'while you were away 1');
    await say(alice, 'while you were away 2');
    await say(alice, 'while you were away 3');
    await shot(bob, 'bob-reconnecting.png');
    servers.bob.srv = await startServer({ port, nodeId: servers.bob === servers.alice ? 'node-a' : 'node-b', redisUrl });
    await bob.waitForSelector('#conn[data-state="connected"]', { timeout: 40000 });
    await alice.waitForSelector('#conn[data-state="connected"]', { timeout: 40000 });
    await say(alice, 'after restart');
    await waitText(bob, '#messages .text', 'after restart');
    await bob.waitForTimeout(300); // would a duplicate still arrive?

    const want = ['Hello bob', XSS, 'before restart', 'while you were away 1', 'while you were away 2', 'while you were away 3', 'after restart'];
    assert.deepEqual(await texts(bob), want, 'bob gets every message exactly once, in order');
    await alice.waitForFunction(() => !document.querySelector('#messages li.pending'));
    assert.deepEqual(await texts(alice), want);
    if (servers.topology === 'two-nodes') {
      await waitText(bob, '#messages li.system', '3 messages recovered after reconnect');
    }
    await shot(bob, 'bob-after-restart.png');

    // Unread counts and a phone-sized screen.
    await alice.fill('#join-room', 'random');
    await alice.press('#join-room', 'Enter');
    await alice.waitForSelector('#room-list [data-room="random"].active');
    await say(bob, 'unread for alice');
    await alice.waitForSelector('#room-list [data-room="e2e"] .badge');
    assert.equal(await alice.textContent('#room-list [data-room="e2e"] .badge'), '1');
    assert.equal(await alice.title(), '(1) Switchboard');

    const phone = await user('carol', servers.alice, { viewport: { width: 360, height: 740 } });
    await waitText(phone, '#messages .text', 'unread for alice'); // history loaded on join
    assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 360), 'no horizontal scroll at 360 px');
    assert.ok(await phone.isVisible('#compose'));
    await shot(phone, 'phone-360.png');
    await phone.click('#open-nav');
    await phone.waitForTimeout(300);
    await shot(phone, 'phone-360-rooms.png');

    assert.deepEqual(pageErrors, []);
  });

  test('docs screenshot: a chat in progress', { timeout: 60000 }, async () => {
    const room = 'launch';
    const alice = await user('alice', servers.alice, { room });
    const bob = await user('bob', servers.bob, { room });
    const dana = await user('dana', servers.alice, { room });
    await alice.waitForSelector('#member-list [data-user="dana"]');
    const lines = [
      [dana, 'Release notes are up in the wiki. Anything missing?'],
      [alice, 'Looks good! Can we mention that reconnects now recover missed messages?'],
      [alice, 'That was the most requested fix.'],
      [bob, 'Added. I also noted the new close codes for draining nodes.'],
      [dana, 'Great. Rolling node-b first, then node-a in ten minutes.'],
      [bob, 'Watching the dashboards now.'],
    ];
    for (const [page, text] of lines) {
      await say(page, text);
      await waitText(alice, '#messages .text', text);
    }
    await bob.click('#member-list [data-user="alice"]');
    await bob.fill('#dm-compose', 'Lunch after the rollout?');
    await bob.press('#dm-compose', 'Enter');
    await alice.waitForSelector('#dm-list [data-peer="bob"] .badge');
    await alice.click('#dm-list [data-peer="bob"]');
    await waitText(alice, '#dm-messages .text', 'Lunch after the rollout?');
    await alice.fill('#dm-compose', 'Yes! The usual place?');
    await alice.press('#dm-compose', 'Enter');
    await waitText(bob, '#dm-messages .text', 'Yes! The usual place?');
    await dana.locator('#compose').pressSequentially('Node-b is', { delay: 20 });
    await alice.waitForFunction(() => document.getElementById('typing').textContent === 'dana is typing…');
    await alice.focus('#compose');
    await alice.screenshot({ path: path.join(OUT, 'docs-screenshot.png') });
    if (process.env.UPDATE_SCREENSHOT === '1') {
      await alice.screenshot({ path: path.join(repoRoot, 'docs', 'screenshot.png') });
    }
    assert.deepEqual(pageErrors, []);
  });
}
