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
import path from 'node:path';
import { test } from 'node:test';

import { connected, e2eSuite, OUT, say, shot, texts, waitText } from './helpers/browser.mjs';
import { repoRoot, startServer } from './helpers/server.mjs';

const XSS = '<img src=x onerror=alert(1)>';

e2eSuite((e) => {
  const user = (...args) => e.user(...args);
  const pageErrors = e.problems;

  test('chat, typing, members, DMs, XSS and a node restart', { timeout: 120000 }, async (t) => {
    t.diagnostic(`topology: ${e.servers.topology}`);
    const alice = await user('alice', e.servers.alice);
    const bob = await user('bob', e.servers.bob);
    if (e.servers.topology === 'two-nodes') {
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
    const port = e.servers.bob.srv.port;
    const redisUrl = e.servers.redisUrl;
    // Console noise of the unreachable node is expected until both are back.
    await e.outage(async () => {
      await e.servers.bob.srv.stop('SIGTERM');
      await bob.waitForSelector('#conn[data-state="reconnecting"]');
      assert.match(await bob.textContent('#conn-text'), /^Reconnecting/);
      await say(alice, 'while you were away 1');
      await say(alice, 'while you were away 2');
      await say(alice, 'while you were away 3');
      await shot(bob, 'bob-reconnecting.png');
      e.servers.bob.srv = await startServer({ port, nodeId: e.servers.bob === e.servers.alice ? 'node-a' : 'node-b', redisUrl });
      await connected(bob, 40000);
      await connected(alice, 40000);
    });
    await say(alice, 'after restart');
    await waitText(bob, '#messages .text', 'after restart');
    await bob.waitForTimeout(300); // would a duplicate still arrive?

    const want = ['Hello bob', XSS, 'before restart', 'while you were away 1', 'while you were away 2', 'while you were away 3', 'after restart'];
    assert.deepEqual(await texts(bob), want, 'bob gets every message exactly once, in order');
    await alice.waitForFunction(() => !document.querySelector('#messages li.pending'));
    assert.deepEqual(await texts(alice), want);
    if (e.servers.topology === 'two-nodes') {
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

    const phone = await user('carol', e.servers.alice, { viewport: { width: 360, height: 740 } });
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
    const alice = await user('alice', e.servers.alice, { room });
    const bob = await user('bob', e.servers.bob, { room });
    const dana = await user('dana', e.servers.alice, { room });
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
});
