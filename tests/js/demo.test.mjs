// The live demo page at /examples/live-feed/ (and the collaborative board's files at
// /examples/collab-board/): served by livebase when DEMO_ENABLED,
// with the Socket.IO client vendored from the pinned npm package (no CDN), and the
// REST calls the page makes. (The page in a real browser is tested elsewhere.)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connectAsInTheGuide } from './support/guide.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO, eventually } from './support/livebase.mjs';

const PAGE = '/examples/live-feed/';
const pinned = (dir) =>
  JSON.parse(readFileSync(join(REPO, dir, 'package-lock.json'), 'utf8')).packages['node_modules/socket.io-client']
    .version;

let server;
let disabled;

before(async () => {
  [server, disabled] = await Promise.all([Livebase.start(), Livebase.start({ DEMO_ENABLED: 'false' })]);
});

after(async () => {
  await Promise.all([server?.close(), disabled?.close()]);
});

async function get(base, path) {
  const response = await fetch(`${base.url}${path}`);
  return { response, text: await response.text(), type: response.headers.get('content-type') };
}

/** A page's index.html names only its own files, all served by livebase: no CDN. */
async function assertServedLocally(page) {
  const { response, text, type } = await get(server, page);
  assert.equal(response.status, 200);
  assert.equal(type, 'text/html; charset=utf-8');
  const references = [...text.matchAll(/(?:src|href)="([^"]+)"/g)]
    .map((match) => match[1])
    .filter((reference) => !reference.startsWith('data:'));
  assert.deepEqual(references.sort(), ['app.js', 'config.js', 'style.css', 'vendor/socket.io.min.js']);
  assert.doesNotMatch(text, /https?:\/\//);
}

describe('the demo page (DEMO_ENABLED, the default)', () => {
  test('index.html loads its scripts and styles from livebase itself, never from a CDN', async () => {
    await assertServedLocally(PAGE);
  });

  test('/examples/live-feed redirects to the page', async () => {
    const { response } = await get(server, '/examples/live-feed');
    assert.equal(response.status, 200);
    assert.equal(new URL(response.url).pathname, PAGE);
  });

  test('every file it references is served with its type', async () => {
    const expected = {
      'app.js': 'text/javascript; charset=utf-8',
      'style.css': 'text/css; charset=utf-8',
      'config.js': 'text/javascript; charset=utf-8',
      'vendor/socket.io.min.js': 'text/javascript; charset=utf-8',
    };
    for (const [name, type] of Object.entries(expected)) {
      const file = await get(server, `${PAGE}${name}`);
      assert.equal(file.response.status, 200, name);
      assert.equal(file.type, type, name);
    }
  });

  test('the vendored client is the pinned socket.io-client, the version this suite tests', async () => {
    const version = pinned('examples/live-feed');
    assert.equal(version, pinned('tests/js'));
    assert.match(version, /^4\.8\./);
    const { text } = await get(server, `${PAGE}vendor/socket.io.min.js`);
    assert.ok(text.startsWith(`/*!\n * Socket.IO v${version}\n`), text.slice(0, 60));
    const shipped = readFileSync(join(REPO, 'tests/js/node_modules/socket.io-client/dist/socket.io.min.js'), 'utf8');
    assert.equal(text, shipped);
  });

  test('config.js tells the page where Socket.IO is', async () => {
    const { text } = await get(server, `${PAGE}config.js`);
    assert.equal(text, 'window.livebaseConfig = {"socketEnabled":true,"socketPath":"/realtime"};\n');
  });

  test('nothing else is served: other files and paths out of the folder are 404', async () => {
    for (const path of ['package.json', 'package-lock.json', 'vendor/', '..%2F..%2Fpyproject.toml', 'x/../../README.md']) {
      const { response, text } = await get(server, `${PAGE}${path}`);
      assert.equal(response.status, 404, path);
      assert.equal(JSON.parse(text).error.code, 'NOT_FOUND', path);
    }
  });

  test("the page's calls: login, no messages collection yet, the admin's setup, then a live feed", async () => {
    const api = new Api(server.url);
    const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    const ann = await api.register('ann@example.com', 'password-123', { firstName: 'Ann' });
    const list = `/items/messages?sort=${encodeURIComponent('["-createdAt"]')}&limit=50&fields=${encodeURIComponent('*,author.firstName')}`;

    const missing = await api.request('GET', list, { token: ann.token, expect: 404 });
    assert.equal(missing.error.code, 'COLLECTION_NOT_FOUND');

    // The requests the page sends for an administrator (and prints for others).
    await api.request('POST', '/schemas', {
      token: admin.token,
      expect: 201,
      json: {
        collectionName: 'messages',
        schema: {
          name: 'Message',
          timestamps: true,
          fields: {
            text: { type: 'String', allowNull: false },
            channel: { type: 'String', allowNull: false, defaultValue: 'general' },
          },
        },
      },
    });
    await api.request('POST', '/schemas/messages/relationships', {
      token: admin.token,
      expect: 201,
      json: { name: 'author', type: 'M2O', target: 'users', alias: 'messages', onDelete: 'SET NULL' },
    });
    await api.allow(admin.token, 'user', 'users', 'read', { fields: ['id', 'firstName'] });
    await api.allow(admin.token, 'user', 'messages', 'read');
    await api.allow(admin.token, 'user', 'messages', 'create', {
      fields: ['text', 'author_Id', 'channel'],
      conditions: { author_Id: { eq: '$CURRENT_USER' } },
    });
    const { socket } = connectAsInTheGuide(server.url, ann.token);
    try {
      await eventually(() => socket.connected, { what: 'connect' });
      const feed = [];
      socket.on('item.created', (data) => {
        if (data.collection === 'messages') feed.push(data.item);
      });
      const sent = await api.request('POST', '/items/messages', {
        token: ann.token,
        json: { text: 'hello', author_Id: ann.user.id },
        expect: 201,
      });
      await api.request('POST', '/items/messages', {
        token: ann.token,
        json: { text: 'as someone else', author_Id: admin.user.id },
        expect: 403,
      });
      await eventually(() => feed.length === 1, { what: 'the message in the feed' });
      assert.deepEqual(feed[0], sent.data);
      const history = await api.request('GET', list, { token: ann.token });
      assert.deepEqual(
        history.data.map((item) => [item.text, item.author]),
        [['hello', { id: ann.user.id, firstName: 'Ann' }]],
      );
      // The users permission shows first names and nothing else: no e-mails.
      const everyone = await api.request('GET', '/items/users?fields=*', { token: ann.token });
      assert.ok(everyone.data.length >= 2);
      for (const user of everyone.data) assert.deepEqual(Object.keys(user).sort(), ['firstName', 'id']);
    } finally {
      socket.disconnect();
    }
  });

  test('no innerHTML in the three live feeds: messages and names reach the page as text', () => {
    const sources = [
      'examples/live-feed/app.js',
      'examples/react-live-feed/src/LiveFeed.jsx',
      'examples/vue-live-feed/src/LiveFeed.vue',
    ];
    for (const source of sources) {
      const code = readFileSync(join(REPO, source), 'utf8');
      assert.doesNotMatch(code, /\.(?:inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write\(/, source);
      assert.doesNotMatch(code, /dangerouslySetInnerHTML|v-html/, source);
    }
  });
});

describe('the collaborative board (DEMO_ENABLED, the default)', () => {
  const BOARD = '/examples/collab-board/';

  test('index.html loads its scripts and styles from livebase itself, never from a CDN', async () => {
    await assertServedLocally(BOARD);
  });

  test('its vendored client is the live demo\'s, the pinned socket.io-client', async () => {
    const board = await get(server, `${BOARD}vendor/socket.io.min.js`);
    const feed = await get(server, `${PAGE}vendor/socket.io.min.js`);
    assert.equal(board.response.status, 200);
    assert.equal(board.type, 'text/javascript; charset=utf-8');
    assert.equal(board.text, feed.text);
  });

  test('config.js tells the page where Socket.IO is', async () => {
    const { text } = await get(server, `${BOARD}config.js`);
    assert.equal(text, 'window.livebaseConfig = {"socketEnabled":true,"socketPath":"/realtime"};\n');
  });

  test('no innerHTML: what people write reaches the page as text', () => {
    const app = readFileSync(join(REPO, 'examples/collab-board/app.js'), 'utf8');
    assert.doesNotMatch(app, /\.(?:inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write\(/);
  });
});

describe('DEMO_ENABLED=false', () => {
  test('no demo page', async () => {
    for (const path of [PAGE, `${PAGE}app.js`, `${PAGE}config.js`, '/examples/collab-board/']) {
      const { response } = await get(disabled, path);
      assert.equal(response.status, 404, path);
    }
  });
});
