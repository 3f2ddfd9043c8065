// The three live-feed clients in headless Chromium against a real livebase:
// the vanilla demo page and the React and Vue example builds, all served by
// livebase itself. For each: log in through the page's form, see a message
// that someone else creates through REST appear within 2 s, post one through
// the page's form, then stop the server and see the page say it is disconnected.
// Start it again and write while the page is still away (held offline): the page
// recovers its session (SPEC §11), says how many events it missed, shows them in
// order, and does not refetch the list. A reconnect that cannot recover (more
// missed events than SOCKET_RECOVERY_MAX_EVENTS) refetches it as before.
// Each message shows its author's first name: `messages.author` is an M2O to
// `users`, read with `fields=*,author.firstName` (the React example's live
// query asks for that path; the others look up authors that events name).
// The demo page's one-click set-up (an administrator's) is checked on its own.
// The React example follows a live query (SPEC §12) instead of fetching: it
// subscribes where the others fetch, gets `subscription.*` events where they get
// `item.*`, and is also checked for what a live query adds (another channel's
// messages left out, updates, deletions, sorted place, the newest 50 only, the
// server ending the subscription).
// Screenshots go to build/screenshots/ for a human to look at.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO, eventually } from '../js/support/livebase.mjs';
import { launchChromium, screenshot } from './support/chromium.mjs';

const CLIENTS = [
  { name: 'live-feed', path: '/examples/live-feed/', needs: 'examples/live-feed/vendor/socket.io.min.js' },
  {
    name: 'react-live-feed',
    path: '/examples/react-live-feed/',
    needs: 'examples/react-live-feed/dist/index.html',
    live: true, // a live query of the `general` channel's newest 50 messages
    // Its socket needs no collection room: in one (the default) each change would
    // also come as an `item.*` event it ignores, and a recovery would count those too.
    settings: { SOCKET_AUTO_JOIN_COLLECTIONS: 'false' },
  },
  { name: 'vue-live-feed', path: '/examples/vue-live-feed/', needs: 'examples/vue-live-feed/dist/index.html' },
];
const APPEARS_WITHIN_MS = 2000;
// socket.io-client retries after 1, 2, 4, 5, 5... s (±50 %).
const RECONNECT_MS = 15_000;
const ANN = { email: 'ann@example.com', password: 'ann-password-1', firstName: 'Ann' };
const BOB = { email: 'bob@example.com', password: 'bob-password-1', firstName: 'Bob' };
// More missed events than this and a reconnect is a new session (the page refetches).
const MAX_MISSED = 3;
const SHOWN = 50; // the React example's live query: the newest 50 messages of #general

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** The `messages` collection, its `author` relation and the user permissions that the examples expect (see the README). */
const MESSAGE_FIELDS = {
  text: { type: 'String', allowNull: false },
  channel: { type: 'String', allowNull: false, defaultValue: 'general' },
};

async function createMessages(api, adminToken) {
  await api.createCollection(adminToken, 'messages', MESSAGE_FIELDS);
  await api.request('POST', '/schemas/messages/relationships', {
    token: adminToken,
    json: { name: 'author', type: 'M2O', target: 'users', alias: 'messages', onDelete: 'SET NULL' },
    expect: 201,
  });
  await api.allow(adminToken, 'user', 'users', 'read', { fields: ['id', 'firstName'] });
  await api.allow(adminToken, 'user', 'messages', 'read');
  await api.allow(adminToken, 'user', 'messages', 'create', {
    fields: ['text', 'author_Id', 'channel'],
    conditions: { author_Id: { eq: '$CURRENT_USER' } },
  });
}

for (const client of CLIENTS) {
  test(`${client.name}: log in, live messages, post through the form, server gone, session recovered`, async (t) => {
    assert.ok(existsSync(join(REPO, client.needs)), `${client.needs} is missing: run make demo-assets examples`);

    const server = await Livebase.start({ SOCKET_RECOVERY_MAX_EVENTS: String(MAX_MISSED), ...client.settings });
    const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
    t.after(async () => {
      await context.close();
      await server.close();
    });

    const api = new Api(server.url);
    const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    await createMessages(api, admin.token);
    const ann = await api.register(ANN.email, ANN.password, { firstName: ANN.firstName });
    const bob = await api.register(BOB.email, BOB.password, { firstName: BOB.firstName });

    const page = await context.newPage();
    const crashes = [];
    page.on('pageerror', (error) => crashes.push(error.message));
    // The page's loads of the list, counted: its fetches (GET /items/messages), or
    // the subscriptions it asks for (the live query's snapshot).
    let fetches = 0;
    let subscribes = 0;
    const loads = () => (client.live ? subscribes : fetches);
    // And its reads of one message (GET /items/messages/{id}): the author lookups.
    let lookups = 0;
    page.on('request', (request) => {
      const { pathname } = new URL(request.url());
      if (request.method() !== 'GET') return;
      if (pathname === '/items/messages') fetches += 1;
      if (pathname.startsWith('/items/messages/')) lookups += 1;
    });
    // The events the page received, as they came over its WebSockets: `connected` and
    // new messages (`item.created`, or `subscription.added` for a live query).
    const ADDED = client.live ? 'subscription.added' : 'item.created';
    const received = [];
    page.on('websocket', (socket) => {
      socket.on('framereceived', ({ payload }) => {
        const [name, data] = socketEvent(payload) ?? [];
        if (name === 'connected') received.push(`connected ${data.recovered ? `recovered ${data.missed}` : 'new'}`);
        if (name === ADDED) received.push(`${ADDED} ${data.item.text}`);
      });
      socket.on('framesent', ({ payload }) => {
        if (socketEvent(payload)?.[0] === 'subscribe') subscribes += 1;
      });
    });
    const texts = () => page.locator('#messages li .text').allTextContents();
    // Who wrote each message, as the page says it: the first word of its byline.
    const authors = async () =>
      (await page.locator('#messages li .meta').allTextContents()).map((meta) => meta.split(' ')[0]);
    const write = (text) =>
      api.request('POST', '/items/messages', { token: bob.token, json: { text, author_Id: bob.user.id }, expect: 201 });

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
      json: { text: 'hello from bob', author_Id: bob.user.id },
      expect: 201,
    });
    const item = await page.waitForSelector(`#messages li[data-id="${fromBob.data.id}"]`, {
      timeout: Math.max(1, deadline - Date.now()),
    });
    assert.match(await item.textContent(), /hello from bob/);
    // By Bob's first name, not his e-mail or id: the author relation, expanded.
    await page.waitForSelector(`#messages li[data-id="${fromBob.data.id}"] .meta:has-text("Bob")`, {
      timeout: APPEARS_WITHIN_MS,
    });

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
    assert.equal(stored.author_Id, ann.user.id);
    assert.equal(await page.locator('#messages li').count(), 2);
    assert.deepEqual(await authors(), ['Bob', 'you']);
    await screenshot(page, `${client.name}-1-live`);

    // The server goes away: the page says so.
    await server.stop();
    await page.waitForSelector('#status[data-state="disconnected"]', { timeout: 10_000 });
    assert.match(await page.textContent('#status'), /disconnected|cannot reach the server/);
    await screenshot(page, `${client.name}-2-disconnected`);

    // It comes back, and Bob writes while the page is still away: offline, it
    // cannot reconnect before he has written.
    assert.equal(loads(), 1, 'the list is loaded once, on connecting');
    await context.setOffline(true);
    await server.start();
    const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
    for (const text of missed) await write(text);
    assert.notEqual(await page.getAttribute('#status', 'data-state'), 'connected');

    // Back online: the page recovers its session, gets the three events replayed, in order.
    await context.setOffline(false);
    await page.waitForSelector('#status:has-text("recovered 3 missed events")', { timeout: RECONNECT_MS });
    assert.equal(await page.getAttribute('#status', 'data-state'), 'connected');
    await eventually(async () => (await texts()).length === 5, { what: 'the missed messages on the page' });
    assert.deepEqual(await texts(), ['hello from bob', 'hello from the page', ...missed]);
    assert.deepEqual(await authors(), ['Bob', 'you', 'Bob', 'Bob', 'Bob']);
    // Live events follow the replay; the list was never fetched again.
    await write('after the recovery');
    await page.waitForSelector('#messages li:has-text("after the recovery")', { timeout: APPEARS_WITHIN_MS });
    assert.equal(await page.locator('#messages li').count(), 6);
    assert.equal(loads(), 1, 'a recovered session must not load the list again');
    // On the wire: `connected`, then the missed events in order, then live ones.
    assert.deepEqual(received.slice(received.lastIndexOf('connected recovered 3')), [
      'connected recovered 3',
      ...missed.map((text) => `${ADDED} ${text}`),
      `${ADDED} after the recovery`,
    ]);
    await screenshot(page, `${client.name}-3-recovered`);

    // Away again, and more was said than a recovery replays: a new session, the list loaded again.
    await context.setOffline(true);
    await page.waitForSelector('#status:not([data-state="connected"])', { timeout: 10_000 });
    const tooMany = Array.from({ length: MAX_MISSED + 1 }, (_, n) => `too many to replay ${n + 1}`);
    for (const text of tooMany) await write(text);
    await context.setOffline(false);
    await page.waitForSelector('#status[data-state="connected"]', { timeout: RECONNECT_MS });
    await eventually(async () => (await texts()).length === 10, { what: 'the refetched messages on the page' });
    assert.deepEqual((await texts()).slice(6), tooMany);
    assert.equal(loads(), 2, 'a new session loads the list again, once');
    assert.doesNotMatch(await page.textContent('#status'), /recovered/);
    assert.equal(received.at(-1), 'connected new');
    assert.deepEqual((await authors()).slice(6), ['Bob', 'Bob', 'Bob', 'Bob']);
    // Bob's name was read once, for his first message's event; the lists and the
    // live query's events bring it themselves.
    assert.equal(lookups, client.live ? 0 : 1, 'authors looked up once each');

    if (client.live) {
      assert.equal(fetches, 0, 'a live query fetches nothing through REST');
      await checkLiveQuery({ page, api, admin, bob, texts, loads, name: client.name });
    }
    assert.deepEqual(crashes, [], 'uncaught errors in the page');
  });
}

test("live-feed: an administrator's one-click set-up creates messages with its author relation", async (t) => {
  const server = await Livebase.start();
  const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
  t.after(async () => {
    await context.close();
    await server.close();
  });
  const api = new Api(server.url);
  const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  // Left from an earlier set-up (the users permission outlives a dropped messages
  // collection): the set-up takes it as done.
  await api.allow(admin.token, 'user', 'users', 'read', { fields: ['id', 'firstName'] });
  const ann = await api.register(ANN.email, ANN.password, { firstName: ANN.firstName });

  const page = await context.newPage();
  await page.goto(`${server.url}/examples/live-feed/`);
  await page.fill('#login-form input[name=email]', ADMIN_EMAIL);
  await page.fill('#login-form input[name=password]', ADMIN_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#setup-button', { state: 'visible', timeout: 10_000 });
  assert.match(await page.textContent('#setup-commands'), /relationships/);
  await page.click('#setup-button');
  await page.waitForSelector('#post-form', { state: 'visible', timeout: 10_000 });
  assert.equal(await page.isVisible('#feed-error'), false, await page.textContent('#feed-error'));

  const schema = (await api.request('GET', '/schemas/messages', { token: admin.token })).data;
  assert.deepEqual(Object.keys(schema.schema.fields).sort(), ['author_Id', 'channel', 'text']);
  assert.deepEqual(schema.relationships.map(({ name, type, target }) => [name, type, target]), [['author', 'M2O', 'users']]);
  // Ann posts as herself only, and reads messages with their authors' first names.
  await api.request('POST', '/items/messages', { token: ann.token, json: { text: 'hi', author_Id: admin.user.id }, expect: 403 });
  await api.request('POST', '/items/messages', { token: ann.token, json: { text: 'hi', author_Id: ann.user.id }, expect: 201 });
  const list = await api.request('GET', `/items/messages?fields=${encodeURIComponent('*,author.firstName')}`, { token: ann.token });
  assert.deepEqual(list.data[0].author, { id: ann.user.id, firstName: 'Ann' });
  await page.waitForSelector('#messages li:has-text("hi") .meta:has-text("Ann")', { timeout: APPEARS_WITHIN_MS });
});

/** A Socket.IO event in a WebSocket frame's payload: [name, data], else null. */
function socketEvent(payload) {
  const packet = typeof payload === 'string' && /^42\d*(\[.*)$/s.exec(payload); // an event, with an ack id or not
  return packet ? JSON.parse(packet[1]) : null;
}

/** What a live query adds, on the React example's page (signed in, connected, showing #general). */
async function checkLiveQuery({ page, api, admin, bob, texts, loads, name }) {
  const write = async (text, channel) => {
    const json = { text, author_Id: bob.user.id, ...(channel && { channel }) };
    return (await api.request('POST', '/items/messages', { token: bob.token, json, expect: 201 })).data;
  };
  const edit = (id, json) => api.request('PATCH', `/items/messages/${id}`, { token: admin.token, json });
  const shown = (text) => page.waitForSelector(`#messages li:has-text(${JSON.stringify(text)})`, { timeout: APPEARS_WITHIN_MS });
  const before = await texts();

  // Another channel's message is not shown: the later #general one (a sentinel) is, alone.
  const elsewhere = await write('in #random', 'random');
  await write('sentinel');
  await shown('sentinel');
  assert.deepEqual(await texts(), [...before, 'sentinel']);

  // Moved into #general, it is added where it sorts (before the later sentinel), not at the end.
  await edit(elsewhere.id, { channel: 'general' });
  await shown('in #random');
  assert.deepEqual(await texts(), [...before, 'in #random', 'sentinel']);

  // An update shows in place; a deletion takes it away; moved out of #general, it goes too.
  const first = await page.getAttribute('#messages li >> nth=0', 'data-id');
  await edit(first, { text: 'edited' });
  await page.waitForSelector(`#messages li[data-id="${first}"]:has-text("edited")`, { timeout: APPEARS_WITHIN_MS });
  // A `subscription.changed` item is expanded too: still by Bob, edited by the administrator.
  assert.match(await page.textContent(`#messages li[data-id="${first}"] .meta`), /^Bob /);
  assert.deepEqual(await texts(), ['edited', ...before.slice(1), 'in #random', 'sentinel']);
  await api.request('DELETE', `/items/messages/${first}`, { token: admin.token });
  await page.waitForSelector(`#messages li[data-id="${first}"]`, { state: 'detached', timeout: APPEARS_WITHIN_MS });
  await edit(elsewhere.id, { channel: 'random' });
  await page.waitForSelector(`#messages li[data-id="${elsewhere.id}"]`, { state: 'detached', timeout: APPEARS_WITHIN_MS });
  const kept = [...before.slice(1), 'sentinel'];
  assert.deepEqual(await texts(), kept);
  await screenshot(page, `${name}-4-live-query`);

  // Past 50 messages the oldest leave the page: it shows the newest 50, in order.
  const more = Array.from({ length: SHOWN - kept.length + 2 }, (_, n) => `message ${n + 1}`);
  for (const text of more) await write(text);
  await shown(more.at(-1));
  const newest = [...kept, ...more].slice(-SHOWN);
  await eventually(async () => (await texts()).length === SHOWN, { what: `the newest ${SHOWN} messages` });
  assert.deepEqual(await texts(), newest);

  // The server ends the subscription (the collection's schema changed): the page says
  // so and drops the list; following it again loads the newest 50 anew.
  const loaded = loads();
  await api.request('PATCH', '/schemas/messages', {
    token: admin.token,
    json: { schema: { name: 'messages', timestamps: true, fields: { ...MESSAGE_FIELDS, pinned: { type: 'Boolean' } } } },
  });
  const ended = await page.waitForSelector('#feed-ended', { timeout: APPEARS_WITHIN_MS });
  assert.match(await ended.textContent(), /the schema of messages changed/);
  assert.equal(await page.locator('#messages li').count(), 0);
  await screenshot(page, `${name}-5-ended`);
  await page.click('#resubscribe');
  await eventually(async () => (await texts()).length === SHOWN, { what: 'the list subscribed again' });
  assert.deepEqual(await texts(), newest);
  assert.equal(await page.locator('#feed-ended').count(), 0);
  assert.equal(loads(), loaded + 1);
  await write('after following again');
  await shown('after following again');
}
