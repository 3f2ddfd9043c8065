// The collaborative board (SPEC §13, examples/collab-board/) in two headless
// Chromium pages at once, each its own browser context (its own storage and
// socket), logged in as two people, against a real livebase that serves the page.
//
// An administrator sets the board up with the page's one button (a user who is
// not one is told to ask). Then: a note Ann adds shows on Bob's page within 2 s;
// Ann's pointer moves on Bob's page, and Bob's on Ann's; a note Ann drags moves on
// Bob's page and is stored; both faces show on both pages; text from a note never
// becomes markup. Both edit the same note: Ann saves first, Bob's save (with the
// ETag his edit started from) is refused with 412 and his page shows the
// conflict; he overwrites with his text and both pages end with it. A move in
// the middle of an edit is no conflict: the save goes through. Ann's page
// goes offline and comes back: it has what was added meanwhile, and both are
// still on the board. When Bob closes his page, his face and cursor leave Ann's
// (after SOCKET_PRESENCE_GRACE, one second here). Screenshots go to build/screenshots/collab-board-*.png.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO, eventually } from '../js/support/livebase.mjs';
import { launchChromium, screenshot } from './support/chromium.mjs';

const PAGE = '/examples/collab-board/';
const APPEARS_WITHIN_MS = 2000;
const ANN = { email: 'ann@example.com', password: 'ann-password-1' };
const BOB = { email: 'bob@example.com', password: 'bob-password-1' };

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** A page of its own browser context, with its uncaught errors and its answers to PATCH. */
async function openPage(server) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 980 } });
  const page = await context.newPage();
  page.crashes = [];
  page.patches = [];
  page.on('pageerror', (error) => page.crashes.push(error.message));
  page.on('response', (response) => {
    if (response.request().method() === 'PATCH') page.patches.push(response.status());
  });
  const loaded = await page.goto(`${server.url}${PAGE}`);
  assert.equal(loaded.status(), 200);
  return page;
}

async function logIn(page, { email, password }) {
  await page.fill('#login-form input[name=email]', email);
  await page.fill('#login-form input[name=password]', password);
  await page.click('#login-form button[type=submit]');
}

const connected = (page) => page.waitForSelector('#status[data-state="connected"]', { timeout: 10_000 });

/** A point on the board, in the board's own pixels, as the page's mouse. */
async function pointAt(page, x, y, steps = 4) {
  const box = await page.locator('#board').boundingBox();
  await page.mouse.move(box.x + x, box.y + y, { steps });
}

test('collab-board: notes, cursors, faces and a conflicting edit between two people', async (t) => {
  assert.ok(existsSync(join(REPO, 'examples/collab-board/vendor/socket.io.min.js')), 'run make demo-assets');
  const server = await Livebase.start({ SOCKET_PRESENCE_GRACE: '1' });
  const pages = [];
  t.after(async () => {
    for (const page of pages) await page.context().close();
    await server.close();
  });

  const api = new Api(server.url);
  const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  const annSession = await api.register(ANN.email, ANN.password);
  const bobSession = await api.register(BOB.email, BOB.password);
  const [ann, bob] = [annSession.user, bobSession.user];

  // Before the setup: a user is told what to ask an administrator for.
  const a = await openPage(server);
  pages.push(a);
  await logIn(a, ANN);
  await a.waitForSelector('#setup-other', { state: 'visible' });
  assert.equal(await a.isVisible('#setup-admin'), false);
  assert.match(await a.textContent('#setup-commands'), /"collectionName":"notes"/);

  // The administrator sets it up with one click, and is on the board.
  const setup = await openPage(server);
  await logIn(setup, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
  await setup.click('#setup-button');
  await connected(setup);
  assert.equal(await setup.isVisible('#setup'), false);
  const [board] = (await api.request('GET', '/items/boards', { token: admin.token })).data;
  assert.ok(board, 'the setup created the board');
  await setup.context().close();

  // Ann (reloading) and Bob, each on the board.
  await a.reload();
  await connected(a);
  const b = await openPage(server);
  pages.push(b);
  await logIn(b, BOB);
  await connected(b);

  // (c) Both faces on both pages, and nobody else's once the administrator's grace is over.
  const faces = (page) => page.locator('#people .person').evaluateAll((all) => all.map((li) => li.dataset.userId));
  for (const page of [a, b]) {
    await eventually(async () => JSON.stringify((await faces(page)).sort()) === JSON.stringify([ann.id, bob.id].sort()), {
      timeout: 10_000,
      what: 'the faces of Ann and Bob, only',
    });
  }
  assert.match(await a.textContent(`#people .person[data-user-id="${ann.id}"]`), /AN\s*ann \(you\)/);
  assert.match(await a.textContent(`#people .person[data-user-id="${bob.id}"]`), /BO\s*bob$/);
  assert.match(await b.textContent(`#people .person[data-user-id="${bob.id}"]`), /bob \(you\)/);

  // (a) Ann adds a note: it is on Bob's page within 2 s.
  await a.fill('#add-form input[name=text]', 'hello from ann');
  const deadline = Date.now() + APPEARS_WITHIN_MS;
  await a.click('#add-form button[type=submit]');
  const onB = await b.waitForSelector('#board .note:has-text("hello from ann")', {
    timeout: Math.max(1, deadline - Date.now()),
  });
  const noteId = await onB.getAttribute('data-id');
  const stored = await api.request('GET', `/items/notes/${noteId}`, { token: bobSession.token });
  assert.equal(stored.data.text, 'hello from ann');

  // Text is text: a note that looks like markup shows as written, on the other page too.
  const markup = '<img src=x onerror="window.owned=1"><b>bold</b>';
  await a.fill('#add-form input[name=text]', markup);
  await a.click('#add-form button[type=submit]');
  const tricky = b.locator('#board .note', { hasText: 'bold</b>' });
  await tricky.waitFor({ timeout: APPEARS_WITHIN_MS });
  assert.equal(await tricky.locator('.text').textContent(), markup);
  assert.equal(await tricky.locator('img, b').count(), 0);
  assert.equal(await b.evaluate(() => window.owned), undefined);

  // (b) Ann's pointer over the board: her labelled cursor shows and follows on Bob's page.
  const annsCursor = b.locator(`#board .cursor[data-user-id="${ann.id}"]`);
  await pointAt(a, 600, 420);
  await annsCursor.waitFor({ state: 'visible', timeout: APPEARS_WITHIN_MS });
  assert.equal(await annsCursor.textContent(), 'ann');
  await eventually(async () => (await annsCursor.getAttribute('style'))?.includes('translate(600px, 420px)'), {
    what: "Ann's cursor at (600, 420) on Bob's page",
  });
  await pointAt(a, 820, 520);
  await eventually(async () => (await annsCursor.getAttribute('style'))?.includes('translate(820px, 520px)'), {
    what: "Ann's cursor moved to (820, 520) on Bob's page",
  });
  // And Bob's on Ann's page.
  await pointAt(b, 700, 300);
  const bobsCursor = a.locator(`#board .cursor[data-user-id="${bob.id}"]`);
  await bobsCursor.waitFor({ state: 'visible', timeout: APPEARS_WITHIN_MS });
  assert.equal(await bobsCursor.textContent(), 'bob');

  // Ann drags her first note: it moves on Bob's page, and the place is stored.
  const annsNote = a.locator(`#board .note[data-id="${noteId}"]`);
  const from = await annsNote.locator('.text').boundingBox();
  await a.mouse.move(from.x + 20, from.y + 8);
  await a.mouse.down();
  await a.mouse.move(from.x + 320, from.y + 208, { steps: 8 });
  await a.mouse.up();
  const moved = await eventually(
    async () => {
      const { data } = await api.request('GET', `/items/notes/${noteId}`, { token: bobSession.token });
      return data.x !== stored.data.x && data;
    },
    { what: 'the move stored' },
  );
  assert.deepEqual([moved.x, moved.y], [stored.data.x + 300, stored.data.y + 200]);
  const bobsNote = b.locator(`#board .note[data-id="${noteId}"]`);
  await eventually(
    async () => (await bobsNote.getAttribute('style')).includes(`left: ${moved.x}px; top: ${moved.y}px`),
    { what: "the note moved on Bob's page" },
  );
  await pointAt(a, 600, 420);
  await screenshot(a, 'collab-board-a');
  await screenshot(b, 'collab-board-b');

  // (d) Both edit the same note. Ann saves first; Bob's save, conditional on the
  // version he started from, is refused with 412, and his page shows both versions.
  await a.click(`#board .note[data-id="${noteId}"] .edit`);
  await b.click(`#board .note[data-id="${noteId}"] .edit`);
  await a.locator(`#board .note[data-id="${noteId}"] textarea.draft`).fill("ann's version");
  await b.locator(`#board .note[data-id="${noteId}"] textarea.draft`).fill("bob's version");
  await a.click(`#board .note[data-id="${noteId}"] .save`);
  await a.waitForSelector(`#board .note[data-id="${noteId}"] .text:text-is("ann's version")`);
  // Bob's draft stays, with a word that the note changed meanwhile.
  await b.waitForSelector(`#board .note[data-id="${noteId}"].changed`, { timeout: APPEARS_WITHIN_MS });
  assert.equal(await b.inputValue(`#board .note[data-id="${noteId}"] textarea.draft`), "bob's version");

  await b.click(`#board .note[data-id="${noteId}"] .save`);
  await b.waitForSelector('#conflict', { state: 'visible', timeout: 5000 });
  assert.ok(b.patches.includes(412), `Bob's save answered ${b.patches}, not 412`);
  assert.equal(await b.textContent('#conflict-theirs'), "ann's version");
  assert.equal(await b.inputValue('#conflict-mine'), "bob's version");
  const unchanged = await api.request('GET', `/items/notes/${noteId}`, { token: bobSession.token });
  assert.equal(unchanged.data.text, "ann's version", 'a refused save writes nothing');
  await screenshot(b, 'collab-board-conflict');

  // Bob overwrites with his: both pages end with it, and so does the server.
  await b.click('#overwrite-mine');
  await b.waitForSelector('#conflict', { state: 'hidden' });
  for (const page of [a, b]) {
    await page.waitForSelector(`#board .note[data-id="${noteId}"] .text:text-is("bob's version")`, {
      timeout: APPEARS_WITHIN_MS,
    });
  }
  const resolved = await api.request('GET', `/items/notes/${noteId}`, { token: annSession.token });
  assert.equal(resolved.data.text, "bob's version");
  assert.equal(b.patches.at(-1), 200);
  await screenshot(a, 'collab-board-resolved');

  // A move is no conflict for the text: Bob edits, Ann drags the note meanwhile, and
  // Bob's save (412: the note changed) goes through again with the new ETag.
  await b.click(`#board .note[data-id="${noteId}"] .edit`);
  const draft = b.locator(`#board .note[data-id="${noteId}"] textarea.draft`);
  await draft.fill('bob again');
  const grip = await annsNote.locator('.text').boundingBox();
  await a.mouse.move(grip.x + 20, grip.y + 8);
  await a.mouse.down();
  await a.mouse.move(grip.x - 80, grip.y + 58, { steps: 6 });
  await a.mouse.up();
  await eventually(
    async () => (await api.request('GET', `/items/notes/${noteId}`, { token: bobSession.token })).data.x === moved.x - 100,
    { what: 'the second move stored' },
  );
  const patches = b.patches.length;
  await b.click(`#board .note[data-id="${noteId}"] .save`);
  for (const page of [a, b]) {
    await page.waitForSelector(`#board .note[data-id="${noteId}"] .text:text-is("bob again")`, {
      timeout: APPEARS_WITHIN_MS,
    });
  }
  assert.deepEqual(b.patches.slice(patches), [412, 200]);
  assert.equal(await b.isVisible('#conflict'), false);

  // Ann's connection drops, and Bob adds a note meanwhile. Back online, her page has
  // it, both faces are on both pages again, and her cursor still reaches Bob.
  await a.context().setOffline(true);
  await a.waitForSelector('#status:not([data-state="connected"])', { timeout: 10_000 });
  await b.fill('#add-form input[name=text]', 'while ann was away');
  await b.click('#add-form button[type=submit]');
  await b.waitForSelector('#board .note:has-text("while ann was away")');
  await a.context().setOffline(false);
  await connected(a).then(() => a.waitForSelector('#board .note:has-text("while ann was away")'));
  for (const page of [a, b]) {
    await eventually(async () => JSON.stringify((await faces(page)).sort()) === JSON.stringify([ann.id, bob.id].sort()), {
      timeout: 10_000,
      what: 'the faces of Ann and Bob after the reconnect',
    });
  }
  await pointAt(a, 300, 500);
  await eventually(async () => (await annsCursor.getAttribute('style'))?.includes('translate(300px, 500px)'), {
    what: "Ann's cursor on Bob's page after the reconnect",
  });

  // (e) Bob closes his page: after the grace, his face and cursor leave Ann's.
  assert.equal(await a.locator(`#people .person[data-user-id="${bob.id}"]`).count(), 1);
  assert.equal(await bobsCursor.count(), 1);
  const crashes = [...a.crashes, ...b.crashes];
  pages.splice(pages.indexOf(b), 1);
  await b.context().close();
  await eventually(
    async () =>
      (await a.locator(`#people .person[data-user-id="${bob.id}"]`).count()) === 0 && (await bobsCursor.count()) === 0,
    { timeout: 10_000, what: "Bob's face and cursor gone from Ann's page" },
  );
  assert.deepEqual(await faces(a), [ann.id]);
  await screenshot(a, 'collab-board-alone');
  assert.deepEqual([...crashes, ...a.crashes], [], 'uncaught errors in the pages');
});
