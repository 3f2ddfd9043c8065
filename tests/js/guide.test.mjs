// The BAASIX guide's client code, run literally with the official socket.io-client
// against a real livebase server: connection options and handlers, item events
// filtered the guide's way, rooms with acks, notifications, files, custom events,
// and the polling-only transport.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { connectAsInTheGuide, record } from './support/guide.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, eventually, sleep } from './support/livebase.mjs';

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

let server;
let api;
let admin; // {token, user}
let ann;
let bob;
const sockets = [];

/** Connect like the guide and remember the socket so that `after` closes it. */
function connect(token, overrides) {
  const client = connectAsInTheGuide(server.url, token, overrides);
  sockets.push(client.socket);
  return client;
}

async function connected(client) {
  await eventually(() => client.socket.connected, { what: 'connect' });
  return client;
}

/** An HS256 token like `token` but with other claims, signed with the server's key. */
function resign(token, claims, key) {
  const [header, payload] = token.split('.');
  const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const body = Buffer.from(JSON.stringify({ ...decoded, ...claims })).toString('base64url');
  const signature = createHmac('sha256', key).update(`${header}.${body}`).digest('base64url');
  return `${header}.${body}.${signature}`;
}

before(async () => {
  server = await Livebase.start();
  api = new Api(server.url);
  admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  ann = await api.register('ann@example.com');
  bob = await api.register('bob@example.com');
  for (const name of ['posts', 'notes']) {
    await api.createCollection(admin.token, name, {
      title: { type: 'String', allowNull: false },
      views: { type: 'Integer', defaultValue: 0 },
    });
    await api.allow(admin.token, 'user', name, 'read');
  }
  await api.createCollection(admin.token, 'alerts', {
    user_id: { type: 'UUID' },
    message: { type: 'String' },
    type: { type: 'String' },
  });
});

after(async () => {
  for (const socket of sockets) socket?.disconnect();
  if (server) await server.close();
});

describe('connection (guide: Client Integration)', () => {
  test('connects with the guide options over websocket; connect and disconnect handlers run', async () => {
    const client = await connected(connect(ann.token));
    const { socket, happened } = client;
    assert.equal(socket.io.engine.transport.name, 'websocket');
    assert.deepEqual(happened, [{ event: 'connect', id: socket.id }]);

    socket.disconnect();
    assert.deepEqual(happened.at(-1), { event: 'disconnect', reason: 'io client disconnect' });
  });

  test('the server says who the socket is once its rooms are joined (`connected`)', async () => {
    const { socket } = connect(ann.token, { autoConnect: false });
    const hello = record(socket, 'connected');
    socket.connect();
    await eventually(() => hello.length === 1, { what: 'connected' });
    // `recovered: false`: a new session (SPEC §11; tests/js/recovery.test.mjs).
    assert.deepEqual(hello[0], { userId: ann.user.id, role: 'user', recovered: false });
  });

  test('autoConnect: false connects only when the app calls socket.connect()', async () => {
    const { socket, happened } = connect(ann.token, { autoConnect: false });
    await sleep(300);
    assert.equal(socket.connected, false);
    assert.deepEqual(happened, []);
    socket.connect();
    await eventually(() => socket.connected, { what: 'connect' });
  });

  test('no token: an anonymous socket with the public role', async () => {
    const { socket } = connect(undefined, { autoConnect: false });
    const hello = record(socket, 'connected');
    socket.connect();
    await eventually(() => hello.length === 1, { what: 'connected' });
    assert.deepEqual(hello[0], { userId: null, role: 'public', recovered: false });
  });

  const refusals = [
    ['a malformed token', () => 'not-a-jwt', 'malformed token'],
    ['a token signed with another key', () => resign(ann.token, {}, 'x'.repeat(48)), 'invalid token signature'],
    [
      'an expired token',
      () => resign(ann.token, { exp: Math.floor(Date.now() / 1000) - 60 }, server.env().SECRET_KEY),
      'token expired',
    ],
  ];
  for (const [name, token, message] of refusals) {
    test(`${name} → connect_error whose message says why`, async () => {
      const { socket, happened } = connect(token());
      await eventually(() => happened.length > 0, { what: 'connect_error' });
      assert.deepEqual(happened, [{ event: 'connect_error', message }]);
      // A refusal by the server is final: socket.io-client does not retry it by itself.
      assert.equal(socket.active, false);
      assert.equal(socket.connected, false);
    });
  }

  test('a logged-out token → connect_error "session revoked (logged out)"', async () => {
    const session = await api.login('bob@example.com', 'password-123');
    await api.request('POST', '/auth/logout', { token: session.token });
    const { happened } = connect(session.token);
    await eventually(() => happened.length > 0, { what: 'connect_error' });
    assert.deepEqual(happened, [{ event: 'connect_error', message: 'session revoked (logged out)' }]);
  });
});

describe('item events (guide: item.created / item.updated)', () => {
  test("item.created, filtered by data.collection as in the guide's example", async () => {
    const { socket } = await connected(connect(ann.token));
    const posts = [];
    const everything = record(socket, 'item.created');

    socket.on('item.created', (data) => {
      if (data.collection === 'posts') {
        posts.push(data.item);
      }
    });

    const note = await api.request('POST', '/items/notes', { token: admin.token, json: { title: 'a note' } });
    const post = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'Hello' } });

    await eventually(() => posts.length === 1, { what: 'the post' });
    assert.deepEqual(posts[0], post.data);
    assert.equal(posts[0].title, 'Hello');
    // The note arrived too (the socket may read notes); the guide's filter kept it out of the list.
    await eventually(() => everything.length === 2, { what: 'both events' });
    assert.deepEqual(
      everything.map((data) => [data.collection, data.item.id]),
      [
        ['notes', note.data.id],
        ['posts', post.data.id],
      ],
    );
    const data = everything[1];
    assert.deepEqual(Object.keys(data).sort(), ['collection', 'item', 'timestamp', 'userId']);
    // Who wrote is cut like a field: posts keep no userUpdated, and ann is not the author.
    assert.equal(data.userId, null);
    assert.match(data.timestamp, ISO_UTC);
  });

  test('item.updated, filtered by data.collection and data.item.id (the item on screen)', async () => {
    const { socket } = await connected(connect(ann.token));
    const one = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'one' } });
    const two = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'two' } });
    const currentPostId = one.data.id;
    const screen = { title: one.data.title, updates: 0 };

    socket.on('item.updated', (data) => {
      if (data.collection === 'posts' && data.item.id === currentPostId) {
        screen.title = data.item.title;
        screen.updates += 1;
      }
    });
    const updates = record(socket, 'item.updated');

    await api.request('PATCH', `/items/posts/${two.data.id}`, { token: admin.token, json: { title: 'two!' } });
    await api.request('PATCH', `/items/posts/${one.data.id}`, { token: admin.token, json: { title: 'one!' } });

    await eventually(() => screen.updates === 1, { what: 'the update of the post on screen' });
    assert.equal(screen.title, 'one!');
    assert.deepEqual(
      updates.map((data) => data.item.id),
      [two.data.id, one.data.id],
    );
  });

  test('the author of a change receives its event too', async () => {
    await api.allow(admin.token, 'user', 'posts', 'create');
    const { socket } = await connected(connect(ann.token));
    const created = record(socket, 'item.created');
    const post = await api.request('POST', '/items/posts', { token: ann.token, json: { title: 'mine' } });
    await eventually(() => created.some((data) => data.item.id === post.data.id), { what: 'own event' });
    assert.equal(created.find((data) => data.item.id === post.data.id).userId, ann.user.id);
  });
});

describe('rooms (guide: Room Management)', () => {
  test("join answers through the ack: response.success and the room's name", async () => {
    const { socket } = await connected(connect(ann.token));
    const post = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'room' } });
    const room = `item:posts:${post.data.id}`;

    const response = await new Promise((resolve) => {
      socket.emit('join', room, (response) => {
        if (response.success) {
          resolve(response);
        } else {
          resolve({ failed: response });
        }
      });
    });
    assert.deepEqual(response, { success: true, room });

    // {room} is accepted as well; leave answers the same way.
    const again = await new Promise((resolve) => socket.emit('join', { room: 'collection:posts' }, resolve));
    assert.deepEqual(again, { success: true, room: 'collection:posts' });
    const left = await new Promise((resolve) => socket.emit('leave', room, resolve));
    assert.deepEqual(left, { success: true, room });
  });

  test("a refused join: response.success is false with a message (another user's room)", async () => {
    const { socket } = await connected(connect(ann.token));
    const response = await new Promise((resolve) => socket.emit('join', `user:${bob.user.id}`, resolve));
    assert.equal(response.success, false);
    assert.equal(typeof response.message, 'string');
    assert.ok(response.message.length > 0);
  });

  test('custom rooms and client events from an extension (examples/extensions/game_rooms.py)', async () => {
    const a = (await connected(connect(ann.token))).socket;
    const b = (await connected(connect(bob.token))).socket;
    const moves = [record(a, 'game:moved'), record(b, 'game:moved')];
    for (const socket of [a, b]) {
      const joined = await new Promise((resolve) => socket.emit('join', 'game:42', resolve));
      assert.deepEqual(joined, { success: true, room: 'game:42' });
    }
    const answer = await new Promise((resolve) => a.emit('game:move', { game: '42', move: 'e4' }, resolve));
    assert.deepEqual(answer, { success: true });
    await eventually(() => moves.every((list) => list.length === 1), { what: 'game:moved' });
    for (const list of moves) assert.deepEqual(list[0], { by: ann.user.id, move: 'e4' });
  });
});

describe('notifications (guide: notification.new)', () => {
  test('POST /notifications/send → notification.new {notification, timestamp} for that user only', async () => {
    const annSocket = (await connected(connect(ann.token))).socket;
    const bobSocket = (await connected(connect(bob.token))).socket;
    const shown = [];
    annSocket.on('notification.new', (data) => {
      shown.push(data);
    });
    const bobs = record(bobSocket, 'notification.new');

    const body = { type: 'info', title: 'Hi Ann', message: 'Your order shipped', data: { order: 7 } };
    await api.request('POST', '/notifications/send', { token: admin.token, json: { ...body, userIds: [ann.user.id] } });
    // Then one for Bob: events reach a socket in order, so once Bob has his,
    // he would already have had Ann's had it been sent to him.
    await api.request('POST', '/notifications/send', {
      token: admin.token,
      json: { ...body, title: 'Hi Bob', userIds: [bob.user.id] },
    });

    await eventually(() => shown.length === 1, { what: "Ann's notification" });
    const { notification, timestamp } = shown[0];
    assert.match(timestamp, ISO_UTC);
    assert.deepEqual(
      { ...notification, id: undefined, createdAt: undefined },
      { ...body, id: undefined, createdAt: undefined, seen: false, userId: ann.user.id },
    );
    assert.equal(typeof notification.id, 'string');
    assert.match(notification.createdAt, ISO_UTC);

    await eventually(() => bobs.length === 1, { what: "Bob's notification" });
    assert.equal(bobs[0].notification.title, 'Hi Bob');
  });

  test('marking it seen → notification.seen', async () => {
    const { socket } = await connected(connect(ann.token));
    const seen = record(socket, 'notification.seen');
    await api.request('POST', '/notifications/send', {
      token: admin.token,
      json: { type: 'info', title: 'Read me', message: '...', userIds: [ann.user.id] },
    });
    const marked = await api.request('POST', '/notifications/mark-seen', { token: ann.token, json: {} });
    await eventually(() => seen.length === marked.data.count, { what: 'notification.seen' });
    assert.ok(seen.length >= 1);
    assert.ok(seen.every((data) => data.notification.seen === true && data.notification.userId === ann.user.id));
  });

  test("the guide's notification hook (examples/extensions/alert_notifications.py)", async () => {
    const { socket } = await connected(connect(ann.token));
    const received = record(socket, 'notification.new');
    const alert = await api.request('POST', '/items/alerts', {
      token: admin.token,
      json: { user_id: ann.user.id, message: 'Disk almost full', type: 'warning' },
    });
    await eventually(() => received.length === 1, { what: 'notification.new from the hook' });
    assert.deepEqual(received[0], { id: alert.data.id, message: 'Disk almost full', type: 'warning' });
  });
});

describe('files (guide: file events)', () => {
  test('POST /files (multipart) → file.uploaded for the uploader', async () => {
    await api.allow(admin.token, 'user', 'files', 'create');
    const { socket } = await connected(connect(ann.token));
    const uploads = [];
    socket.on('file.uploaded', (data) => {
      uploads.push(data);
    });

    const form = new FormData();
    form.append('file', new Blob(['hello, livebase\n'], { type: 'text/plain' }), 'hello.txt');
    form.append('title', 'Greeting');
    const file = await api.request('POST', '/files', { token: ann.token, form, expect: 201 });

    await eventually(() => uploads.length === 1, { what: 'file.uploaded' });
    const data = uploads[0];
    assert.deepEqual(data.file, {
      id: file.data.id,
      filename: 'hello.txt',
      size: 16,
      mimetype: file.data.mimetype,
    });
    assert.match(file.data.mimetype, /^text\/plain/);
    assert.equal(data.action, 'uploaded');
    assert.equal(data.user, ann.user.id);
    assert.match(data.timestamp, ISO_UTC);
  });
});

describe('transports', () => {
  test("polling only (transports: ['polling']): connect, events, join ack", async () => {
    const { socket, happened } = await connected(connect(ann.token, { transports: ['polling'] }));
    assert.equal(socket.io.engine.transport.name, 'polling');
    const posts = [];
    socket.on('item.created', (data) => {
      if (data.collection === 'posts') posts.push(data.item);
    });
    const post = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'polled' } });
    await eventually(() => posts.length === 1, { what: 'item.created over polling' });
    assert.equal(posts[0].id, post.data.id);
    const joined = await new Promise((resolve) => socket.emit('join', `item:posts:${post.data.id}`, resolve));
    assert.equal(joined.success, true);
    assert.equal(socket.io.engine.transport.name, 'polling');
    assert.deepEqual(happened, [{ event: 'connect', id: socket.id }]);
  });

  test("socket.io-client's default (polling, then upgrade to websocket)", async () => {
    const { socket } = await connected(connect(ann.token, { transports: undefined }));
    await eventually(() => socket.io.engine.transport.name === 'websocket', { what: 'the upgrade' });
    const posts = record(socket, 'item.created');
    const post = await api.request('POST', '/items/posts', { token: admin.token, json: { title: 'upgraded' } });
    await eventually(() => posts.some((data) => data.item.id === post.data.id), { what: 'item.created' });
  });
});
