// The three live-feed clients in headless Chromium against a real livebase:
// the vanilla demo page and the React and Vue example builds, all served by
// livebase itself. For each: log in through the page's form, see a message
// that someone else creates through REST appear within 2 s, post one through
// the page's form, then stop the server and see the page say it is disconnected,
// and start it again and see the page reconnect and catch up by itself.
// Screenshots go to build/screenshots/ for a human to look at.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO, eventually } from '../js/support/livebase.mjs';
import { launchChromium, screenshot } from './support/chromium.mjs';

const CLIENTS = [
  { name: 'live-feed', path: '/examples/live-feed/', needs: 'examples/live-feed/vendor/socket.io.min.js' },
  { name: 'react-live-feed', path: '/examples/react-live-feed/', needs: 'examples/react-live-feed/dist/index.html' },
  { name: 'vue-live-feed', path: '/examples/vue-live-feed/', needs: 'examples/vue-live-feed/dist/index.html' },
];
const APPEARS_WITHIN_MS = 2000;
// socket.io-client retries after 1, 2, 4, 5, 5... s (±50 %).
const RECONNECT_MS = 15_000;
const ANN = { email: 'ann@example.com', password: 'ann-password-1' };

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** The `messages` collection and the user permissions that the examples expect (see the README). */
async function createMessages(api, adminToken) {
  await api.createCollection(adminToken, 'messages', {
    text: { type: 'String', allowNull: false },
    author: { type: 'UUID' },
  });
  await api.allow(adminToken, 'user', 'messages', 'read');
  await api.allow(adminToken, 'user', 'messages', 'create', {
    fields: ['text', 'author'],
    conditions: { author: { eq: '$CURRENT_USER' } },
  });
}

for (const client of CLIENTS) {
  test(`${client.name}: log in, live messages, post through the form, server gone`, async (t) => {
    assert.ok(existsSync(join(REPO, client.needs)), `${client.needs} is missing: run make demo-assets examples`);

    const server = await Livebase.start();
    const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
    t.after(async () => {
      await context.close();
      await server.close();
    });

    const api = new Api(server.url);
    const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    await createMessages(api, admin.token);
    const ann = await api.register(ANN.email, ANN.password);
    const bob = await api.register('bob@example.com');

    const page = await context.newPage();
    const crashes = [];
    page.on('pageerror', (error) => crashes.push(error.message));

    // Log in through the page's own form.
    const loaded = await page.goto(`${server.url}${client.path}`);
    assert.equal(loaded.status(), 200);
    assert.equal(await page.textContent('#status'), 'not connected');
    await page.fill('#login-form input[name=email]', ANN.email);
    await page.fill('#login-form input[name=password]', ANN.password);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#status[data-state="connected"]', { timeout: 10_000 });
    assert.match(await page.textContent('#me'), /ann@example\.com \(user\)/);

    // Bob writes through REST: Ann's page shows it without a reload, within 2 s.
    const deadline = Date.now() + APPEARS_WITHIN_MS;
    const fromBob = await api.request('POST', '/items/messages', {
      token: bob.token,
      json: { text: 'hello from bob', author: bob.user.id },
      expect: 201,
    });
    const item = await page.waitForSelector(`#messages li[data-id="${fromBob.data.id}"]`, {
      timeout: Math.max(1, deadline - Date.now()),
    });
    assert.match(await item.textContent(), /hello from bob/);

    // Ann writes through the page's form: stored for everyone, shown as hers.
    await page.fill('#post-form input[name=text]', 'hello from the page');
    await page.click('#post-form button[type=submit]');
    await page.waitForSelector('#messages li.mine:has-text("hello from the page")', { timeout: 5000 });
    const stored = await eventually(
      async () => {
        const list = await api.request('GET', '/items/messages', { token: bob.token });
        return list.data.find((message) => message.text === 'hello from the page');
      },
      { what: "the page's message through REST" },
    );
    assert.equal(stored.author, ann.user.id);
    assert.equal(await page.locator('#messages li').count(), 2);
    await screenshot(page, `${client.name}-1-live`);

    // The server goes away: the page says so.
    await server.stop();
    await page.waitForSelector('#status[data-state="disconnected"]', { timeout: 10_000 });
    assert.match(await page.textContent('#status'), /disconnected|cannot reach the server/);
    await screenshot(page, `${client.name}-2-disconnected`);

    // It comes back by itself, with what was said while it was away.
    await server.start();
    await api.request('POST', '/items/messages', {
      token: bob.token,
      json: { text: 'while you were away', author: bob.user.id },
      expect: 201,
    });
    await page.waitForSelector('#status[data-state="connected"]', { timeout: RECONNECT_MS });
    await page.waitForSelector('#messages li:has-text("while you were away")', { timeout: 5000 });
    assert.equal(await page.locator('#messages li').count(), 3);

    assert.deepEqual(crashes, [], 'uncaught errors in the page');
  });
}
