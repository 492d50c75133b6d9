// Browser end-to-end tests of the demo page's harder states: a reload, a
// lost connection, a phone-sized screen, keyboard-only use and an axe-core
// accessibility check of each, against real servers (see helpers/browser.mjs
// for the topology and the console watch).
//
//   node --test web/test/page.e2e.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connected, e2eSuite, say, shot, texts, waitText } from './helpers/browser.mjs';
import { startProxy } from './helpers/server.mjs';

// The server API (moderation) needs a key; the servers inherit it.
const API_KEY = (process.env.SWITCHBOARD_API_KEY ||= 'e2e-api-key');

/** axeCheck runs axe-core on page and fails on serious or critical
 * violations (WCAG 2 A and AA rules, plus best practices). */
async function axeCheck(page, what) {
  const { default: AxeBuilder } = await import('@axe-core/playwright');
  const res = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const describe = (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`;
  assert.deepEqual(bad.map(describe), [], `axe on ${what}`);
  return res.violations.map(describe); // the minor ones, for the diagnostics
}

e2eSuite((e) => {
  test('signed out: the sign-in form passes axe', async (t) => {
    const page = await e.open(e.servers.alice);
    await page.waitForSelector('#login-name:focus');
    for (const v of await axeCheck(page, 'the sign-in form')) t.diagnostic(`minor: ${v}`);
    assert.deepEqual(e.problems, []);
  });

  test('a reload keeps the name, rooms, open conversation and DMs, and misses nothing', { timeout: 90000 }, async (t) => {
    const rita = await e.user('rita', e.servers.alice, { room: 'one' });
    const sam = await e.user('sam', e.servers.bob, { room: 'one' });
    await rita.fill('#join-room', 'two');
    await rita.press('#join-room', 'Enter');
    await rita.waitForSelector('#room-list [data-room="two"].active');
    await say(rita, 'in two');
    await rita.click('#room-list [data-room="one"]');
    await say(rita, 'rita in one');
    await say(sam, 'sam in one');
    await waitText(rita, '#messages .text', 'sam in one');
    // A DM, so that the reload has one to keep.
    await sam.click('#member-list [data-user="rita"]');
    await sam.fill('#dm-compose', 'a private word');
    await sam.press('#dm-compose', 'Enter');
    await rita.waitForSelector('#dm-list [data-peer="sam"] .badge');
    await rita.waitForFunction(() => !document.querySelector('#messages li.pending'));
    for (const v of await axeCheck(rita, 'a chat with messages')) t.diagnostic(`minor: ${v}`);

    // Frames the page sends from now on: a resumed join, and no history.
    const sent = [];
    rita.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(JSON.parse(f.payload))));

    // Away (the tab navigated elsewhere) while sam talks, then back.
    const back = rita.url();
    await rita.waitForTimeout(400); // the session is saved within 300 ms of a change
    await rita.goto('about:blank');
    await say(sam, 'while rita was away');
    await rita.goto(back);
    await connected(rita);
    assert.equal(await rita.textContent('#me-name'), 'rita');
    assert.ok(await rita.isHidden('#login'));
    assert.deepEqual(await rita.$$eval('#room-list [data-room]', (b) => b.map((x) => x.dataset.room)), ['one', 'two']);
    await rita.waitForSelector('#room-list [data-room="one"].active');
    await waitText(rita, '#messages .text', 'while rita was away');
    await rita.waitForTimeout(300); // would a duplicate still arrive?
    assert.deepEqual(await texts(rita), ['rita in one', 'sam in one', 'while rita was away'], 'every message once, in order');
    assert.deepEqual(await rita.$$eval('#dm-list [data-peer]', (b) => b.map((x) => x.dataset.peer)), ['sam']);
    const joins = sent.filter((f) => f.type === 'join');
    assert.deepEqual(joins.map((f) => [f.room, typeof f.since, typeof f.epoch]), [['one', 'number', 'string'], ['two', 'number', 'string']], 'rooms are resumed from their position');
    assert.deepEqual(sent.filter((f) => f.type === 'history'), [], 'nothing is loaded again');
    await rita.waitForSelector('#messages li.system.good'); // "1 message recovered after reconnect"

    await rita.click('#room-list [data-room="two"]');
    assert.deepEqual(await texts(rita), ['in two']);

    // A DM open at the reload is open after it, with its messages.
    await rita.click('#dm-list [data-peer="sam"]');
    await waitText(rita, '#dm-messages .text', 'a private word');
    await rita.waitForTimeout(400);
    await rita.reload();
    await connected(rita);
    await rita.waitForSelector('#dm-pane:not([hidden])');
    assert.equal(await rita.textContent('#dm-title'), 'sam');
    assert.deepEqual(await rita.$$eval('#dm-messages .text', (m) => m.map((x) => x.textContent)), ['a private word']);
    assert.ok(await rita.isVisible('#room-list [data-room="two"].active'), 'and the room that was open behind it');

    // Sign out forgets it all: a reload shows the sign-in form.
    await rita.click('#sign-out');
    await rita.waitForSelector('#login:not([hidden])');
    assert.equal(await rita.inputValue('#login-name'), 'rita', 'the name is offered again');
    await rita.reload();
    await rita.waitForSelector('#login:not([hidden])');
    assert.equal(await rita.evaluate(() => localStorage.length), 0);
    assert.deepEqual(e.problems, []);
  });

  test('disconnected: a banner with Retry, a pending message delivered once, stale presence', { timeout: 120000 }, async (t) => {
    // pat reaches bob's node through a proxy that can block it; olga is on
    // alice's node, directly.
    const proxy = await startProxy(e.servers.bob.srv.port);
    t.after(() => proxy.close());
    const olga = await e.user('olga', e.servers.alice, { room: 'outage' });
    const pat = await e.user('pat', { base: `http://127.0.0.1:${proxy.port}` }, { room: 'outage' });
    await pat.waitForSelector('#member-list [data-user="olga"]');
    assert.equal(await pat.getAttribute('#open-people', 'title'), '2 online');
    assert.equal(await pat.getAttribute('#open-people', 'aria-label'), 'Members: 2 online');
    assert.ok(await pat.isHidden('#banner'));

    await e.outage(async () => {
      proxy.refuse(true);
      proxy.dropAll();
      await pat.waitForSelector('#banner:not([hidden])');
      assert.match(await pat.textContent('#banner-text'), /^Disconnected — reconnecting/);
      assert.ok(await pat.isVisible('#banner-retry'));
      assert.match(await pat.getAttribute('#open-people', 'title'), /^2 online, as last known$/);
      assert.ok(await pat.evaluate(() => document.body.classList.contains('disconnected')), 'presence shown as stale');

      // The message box stays usable; what is typed waits, marked pending.
      assert.ok(await pat.isEditable('#compose'));
      await say(pat, 'typed while offline');
      await pat.waitForSelector('#messages li.msg.mine.pending');
      assert.equal(await pat.textContent('#messages li.pending .status'), 'Pending · sent when the connection is back');
      for (const v of await axeCheck(pat, 'the disconnected banner')) t.diagnostic(`minor: ${v}`);
      await shot(pat, 'disconnected.png');

      // Wait for a reconnect that is seconds away, then bring the node back
      // and make the tab visible: the page retries at once, not at the
      // scheduled time.
      const due = await pat.waitForFunction(() => {
        const m = /reconnecting in (\d+) s/.exec(document.getElementById('banner-text').textContent);
        return m && Number(m[1]) >= 4 ? Date.now() + (Number(m[1]) - 1) * 1000 : null;
      }, null, { timeout: 60000, polling: 100 });
      const notBefore = await due.jsonValue();
      proxy.refuse(false);
      await pat.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
      await connected(pat);
      assert.ok(await pat.evaluate((at) => Date.now() < at, notBefore), 'reconnected before the scheduled attempt');
    });

    await pat.waitForSelector('#banner', { state: 'hidden' });
    await pat.waitForFunction(() => !document.querySelector('#messages li.pending'));
    await waitText(olga, '#messages .text', 'typed while offline');
    await olga.waitForTimeout(300); // would a duplicate still arrive?
    assert.deepEqual(await texts(olga), ['typed while offline'], 'olga sees it exactly once');
    assert.deepEqual(await texts(pat), ['typed while offline']);
    assert.ok(!(await pat.evaluate(() => document.body.classList.contains('disconnected'))));
    assert.deepEqual(e.problems, []);
  });

  test('a 390 px screen: unread DMs show on the menu button', { timeout: 60000 }, async (t) => {
    const nina = await e.user('nina', e.servers.alice, { room: 'narrow', viewport: { width: 390, height: 844 } });
    const omar = await e.user('omar', e.servers.bob, { room: 'narrow' });
    assert.ok(await nina.isHidden('#sidebar'), 'the room list is behind the menu button');
    assert.ok(await nina.isHidden('#nav-badge'));
    assert.equal(await nina.getAttribute('#open-nav', 'aria-label'), 'Menu');
    const focusable = (sel) => nina.evaluate((s) => {
      document.querySelector(s).focus();
      return document.activeElement === document.querySelector(s);
    }, sel);
    assert.equal(await focusable('#room-list [data-room="narrow"]'), false, 'the closed drawer is out of the tab order');

    await omar.click('#member-list [data-user="nina"]');
    for (const text of ['are you there?', 'ping me back']) {
      await omar.fill('#dm-compose', text);
      await omar.press('#dm-compose', 'Enter');
    }
    await nina.waitForFunction(() => document.getElementById('nav-badge').textContent === '2');
    assert.ok(await nina.isVisible('#nav-badge'));
    assert.equal(await nina.getAttribute('#open-nav', 'aria-label'), 'Menu, 2 unread');
    assert.ok(await nina.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scroll');
    for (const v of await axeCheck(nina, 'a 390 px screen')) t.diagnostic(`minor: ${v}`);
    await shot(nina, 'phone-390-unread.png');

    await nina.click('#open-nav');
    assert.equal(await nina.getAttribute('#open-nav', 'aria-expanded'), 'true');
    assert.equal(await nina.evaluate(() => document.activeElement.dataset.room), 'narrow', 'the opened drawer takes the focus');
    await nina.click('#dm-list [data-peer="omar"]');
    await waitText(nina, '#dm-messages .text', 'ping me back');
    assert.ok(await nina.isHidden('#nav-badge'), 'read: no badge');
    assert.deepEqual(e.problems, []);
  });

  test('keyboard only: sign in, join a room, send, switch conversation', { timeout: 60000 }, async () => {
    const page = await e.open(e.servers.alice, { name: 'kim' });
    const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.dataset.room || document.activeElement?.tagName);
    /** tabTo presses Tab until the focus is on what test() accepts. */
    const tabTo = async (what, accept) => {
      for (let i = 0; i < 40; i++) {
        if (await page.evaluate(accept)) return;
        await page.keyboard.press('Tab');
      }
      assert.fail(`Tab never reached ${what}; focus is on ${await focused()}`);
    };
    // A visible focus indicator wherever the keyboard goes.
    const outlined = () => page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none');

    // The name field has the focus from the start (autofocus); Tab and
    // Shift+Tab reach it too.
    await page.waitForSelector('#login-name:focus');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await focused(), 'login-name');
    assert.ok(await outlined());
    await page.keyboard.type('kim');
    await tabTo('the room field', () => document.activeElement.id === 'login-room');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('keys');
    await page.keyboard.press('Enter');
    await connected(page);
    assert.equal(await focused(), 'compose', 'signed in, the message box has the focus');

    await tabTo('the join field', () => document.activeElement.id === 'join-room');
    assert.ok(await outlined());
    await page.keyboard.type('keys-two');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#room-list [data-room="keys-two"].active');
    assert.equal(await focused(), 'compose');
    await page.keyboard.type('sent from the keyboard');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#messages li.msg.mine:not(.pending)');
    assert.deepEqual(await texts(page), ['sent from the keyboard']);

    await tabTo('the first room', () => document.activeElement.dataset.room === 'keys');
    assert.ok(await outlined());
    await page.keyboard.press('Enter');
    await page.waitForSelector('#room-list [data-room="keys"].active');
    assert.equal(await page.textContent('#room-name'), 'keys');
    assert.deepEqual(e.problems, []);
  });

  test('edit and delete own messages, unread badge after a reload, a muted user sees why', { timeout: 90000 }, async (t) => {
    const ed = await e.user('edna', e.servers.alice, { room: 'edits' });
    const fred = await e.user('fred', e.servers.bob, { room: 'edits' });
    await say(ed, 'helo');
    await say(ed, 'to be deleted');
    await waitText(fred, '#messages .text', 'to be deleted');
    await ed.waitForFunction(() => !document.querySelector('#messages li.pending'));

    // Edit inline; the other client sees the new text, marked.
    const row = (page, text) => page.locator('#messages li.msg', { hasText: text });
    await row(ed, 'helo').hover();
    await row(ed, 'helo').getByRole('button', { name: 'Edit message' }).click();
    await ed.fill('#messages .edit-text', 'hello');
    await ed.press('#messages .edit-text', 'Enter');
    await waitText(fred, '#messages .text', 'hello (edited)');
    await waitText(ed, '#messages .text', 'hello (edited)');
    assert.equal(await fred.locator('#messages li.msg[data-from="fred"] button').count(), 0);
    assert.equal(await fred.locator('#messages li.msg button[aria-label="Edit message"]').count(), 0, 'no edit button on others\' messages');

    // Delete: the text leaves both pages.
    await row(ed, 'to be deleted').getByRole('button', { name: 'Delete message' }).click();
    await waitText(fred, '#messages .text', 'message deleted');
    await ed.waitForFunction(() => !document.querySelector('#messages').textContent.includes('to be deleted'));
    assert.ok(!(await fred.textContent('#messages')).includes('to be deleted'));
    for (const v of await axeCheck(ed, 'edited and deleted messages')) t.diagnostic(`minor: ${v}`);

    // Seen by: fred has the room open.
    await ed.waitForSelector('#messages li.seen');
    assert.equal(await ed.textContent('#messages li.seen'), 'Seen by fred');

    // Unread: fred opens another room; two messages arrive; a reload shows the count.
    await fred.fill('#join-room', 'elsewhere');
    await fred.press('#join-room', 'Enter');
    await fred.waitForSelector('#room-list [data-room="elsewhere"].active');
    await say(ed, 'one');
    await say(ed, 'two');
    await fred.waitForSelector('#room-list [data-room="edits"] .badge');
    await fred.waitForTimeout(400); // the session is saved within 300 ms
    await fred.reload();
    await connected(fred);
    await fred.waitForFunction(() => document.querySelector('#room-list [data-room="edits"] .badge')?.textContent === '2');
    await fred.click('#room-list [data-room="edits"]');
    await fred.waitForFunction(() => !document.querySelector('#room-list [data-room="edits"] .badge'));

    // Muted through the server API: the notice says why; the composer is off.
    const res = await fetch(`${e.servers.alice.srv.base}/api/rooms/edits/mutes`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'fred', duration: '10m' }),
    });
    assert.equal(res.status < 300, true, `mute: ${res.status} ${await res.text()}`);
    await fred.waitForSelector('#room-notice:not([hidden])');
    assert.match(await fred.textContent('#room-notice'), /^You are muted in #edits until \d{1,2}:\d{2}/);
    assert.equal(await fred.isDisabled('#compose'), true);
    for (const v of await axeCheck(fred, 'a muted user')) t.diagnostic(`minor: ${v}`);
    const un = await fetch(`${e.servers.bob.srv.base}/api/rooms/edits/mutes/fred`, { method: 'DELETE', headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal(un.status < 300, true);
    await fred.waitForSelector('#room-notice', { state: 'hidden' });
    assert.equal(await fred.isDisabled('#compose'), false);
    assert.deepEqual(e.problems, []);
  });
});
