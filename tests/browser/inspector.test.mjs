// The inspector at /admin/ in headless Chromium against a real livebase
// (docs/operations.md, "Inspector"). An administrator logs in through the page's
// form and sees, updating live over Socket.IO (the room admin:inspector): a
// socket the test opened as a user in the socket list, a REST write in the event
// tail within 2 s, the trace of that write for the user rendered, and the
// headline figures. A user who logs in sees "administrators only" and gets
// nothing: no socket is even opened. The screenshot goes to
// build/screenshots/inspector.png for a human to look at.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO } from '../js/support/livebase.mjs';
import { launchChromium, screenshot } from './support/chromium.mjs';

const VENDORED = 'src/livebase/api/static/inspector/vendor/socket.io.min.js';
const APPEARS_WITHIN_MS = 2000;
const ANN = { email: 'ann@example.com', password: 'ann-password-1' };

let browser;
let server;
let api;
let admin;
let ann;

before(async () => {
  assert.ok(existsSync(join(REPO, VENDORED)), `${VENDORED} is missing: run make demo-assets`);
  browser = await launchChromium();
  server = await Livebase.start();
  api = new Api(server.url);
  admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  await api.createCollection(admin.token, 'posts', { title: { type: 'String' } });
  await api.allow(admin.token, 'user', 'posts', 'read');
  ann = await api.register(ANN.email, ANN.password);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A socket of Ann's, opened by the test with the page's own vendored client. */
async function annSocket(context) {
  const page = await context.newPage();
  await page.goto(`${server.url}/admin/`);
  await page.evaluate(
    ({ token }) =>
      new Promise((resolve, reject) => {
        window.annSocket = io(window.location.origin, { path: '/realtime', transports: ['websocket'], auth: { token } });
        window.annSocket.on('connect', resolve);
        window.annSocket.on('connect_error', reject);
      }),
    { token: ann.token },
  );
  const joined = await page.evaluate(
    () => new Promise((resolve) => window.annSocket.emit('join', 'lobby', resolve)),
  );
  assert.equal(joined.success, true);
  // A user asking for the administrators' room is refused.
  const refused = await page.evaluate(
    () => new Promise((resolve) => window.annSocket.emit('join', 'admin:inspector', resolve)),
  );
  assert.equal(refused.success, false);
  assert.match(refused.message, /administrators only/);
  return page;
}

test('an administrator sees live sockets, the event tail, a trace and the figures', async (t) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  t.after(() => context.close());
  await annSocket(context);

  const page = await context.newPage();
  const crashes = [];
  page.on('pageerror', (error) => crashes.push(error.message));
  const loaded = await page.goto(`${server.url}/admin/`);
  assert.equal(loaded.status(), 200);
  assert.equal(await page.textContent('#status'), 'not connected');
  await page.fill('#login-form input[name=email]', ADMIN_EMAIL);
  await page.fill('#login-form input[name=password]', ADMIN_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 10_000 });
  assert.match(await page.textContent('#me'), /admin@example\.com \(administrator\)/);

  // Ann's socket, in the live list, with her e-mail, role, transport and rooms.
  const annRow = await page.waitForSelector(`#sockets tbody tr[data-user="${ann.user.id}"]`, { timeout: 10_000 });
  const cells = await annRow.$$eval('td', (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[0], ANN.email);
  assert.equal(cells[1], 'user');
  assert.equal(cells[2], 'websocket');
  assert.match(cells[4], /lobby/);
  assert.match(cells[4], /collection:posts/);
  assert.doesNotMatch(cells[4], /admin:inspector/);
  assert.match(cells[6], /^\d+$/);
  assert.match(await page.textContent('#sockets-count'), /^2 open/);

  // A REST write shows in the event tail within 2 s.
  const deadline = Date.now() + APPEARS_WITHIN_MS;
  const post = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'traced' }, expect: 201 });
  const key = String(post.data.id);
  const row = await page.waitForSelector(`#tail tbody tr:has(td:nth-child(3):text-is("${key}"))`, {
    timeout: Math.max(1, deadline - Date.now()),
  });
  const tail = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(tail.slice(1, 4), ['posts', key, 'create']);
  const offset = tail[0];
  assert.match(offset, /^\d+$/);

  // Its trace for Ann: clicking the row fills the offset; her socket got it.
  await row.click();
  assert.equal(await page.inputValue('#trace-form input[name=offset]'), offset);
  await page.fill('#trace-form input[name=user]', ann.user.id);
  await page.click('#trace-form button[type=submit]');
  const outcome = await page.waitForSelector('#trace-result .trace-socket .outcome', { timeout: 10_000 });
  assert.equal(await outcome.textContent(), 'written');
  assert.match(await page.textContent('#trace-result .trace-entry'), new RegExp(`Entry ${offset}: create of posts ${key}`));
  assert.match(await page.textContent('#trace-result .trace-socket'), /collection:posts/);

  // A trace the server refuses (a user id that is not one) says why.
  await page.fill('#trace-form input[name=user]', 'not-a-user-id');
  await page.click('#trace-form button[type=submit]');
  await page.waitForSelector('#trace-error:not([hidden])');
  assert.match(await page.textContent('#trace-error'), /user must be a user id/);

  // The headline figures, rates included once two pushes came.
  await page.waitForFunction(
    () => /^\d+(\.\d+)?$/.test(document.querySelector('dd[data-figure="framesPerSecond"]').textContent),
    null,
    { timeout: 10_000 },
  );
  const figure = (name) => page.textContent(`dd[data-figure="${name}"]`);
  assert.equal(await figure('openSockets'), '2');
  assert.match(await figure('eventsPerSecond'), /^\d+(\.\d+)?$/);
  assert.match(await figure('changeLogLag'), /^\d+ entries$/);
  assert.equal(await figure('slowConsumerDisconnects'), '0');
  // The post reached Ann's socket: its latency is in the p99 of the last minute.
  await page.waitForFunction(
    () => / ms$/.test(document.querySelector('dd[data-figure="latencyP99"]').textContent),
    null,
    { timeout: 10_000 },
  );

  // Page back at the trace that worked, for the screenshot.
  await page.fill('#trace-form input[name=user]', ann.user.id);
  await page.click('#trace-form button[type=submit]');
  await page.waitForSelector('#trace-result .trace-socket .outcome');
  await screenshot(page, 'inspector');
  assert.deepEqual(crashes, []);
});

test('a user who logs in sees "administrators only" and gets nothing', async (t) => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const sockets = [];
  page.on('websocket', (socket) => sockets.push(socket.url()));
  const calls = [];
  page.on('request', (request) => calls.push(new URL(request.url()).pathname));

  await page.goto(`${server.url}/admin/`);
  await page.fill('#login-form input[name=email]', ANN.email);
  await page.fill('#login-form input[name=password]', ANN.password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /administrators only/);
  assert.equal(await page.isHidden('#inspector-view'), true);
  assert.deepEqual(await page.$$eval('#sockets tbody tr, #tail tbody tr', (rows) => rows.length), 0);
  assert.deepEqual(sockets, []);
  assert.ok(!calls.some((path) => path.startsWith('/stats/')), calls.join(' '));

  // The API behind the page refuses her anyway.
  const asAnn = await fetch(`${server.url}/stats/realtime/sockets`, { headers: { Authorization: `Bearer ${ann.token}` } });
  assert.equal(asAnn.status, 403);
});
