// The server going away and coming back, as an app's users see it with the
// official client: it reconnects by itself and receives events again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connectAsInTheGuide, record } from './support/guide.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, eventually } from './support/livebase.mjs';

// socket.io-client's reconnection delays (1 s, then 2 s, ... each ±50 %) plus a server start.
const RECONNECT_TIMEOUT = 15_000;

let server;
let api;
let admin;
let ann;
const sockets = [];

function connect(token, overrides) {
  const client = connectAsInTheGuide(server.url, token, overrides);
  sockets.push(client.socket);
  return client;
}

before(async () => {
  server = await Livebase.start();
  api = new Api(server.url);
  admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  ann = await api.register('ann@example.com');
  await api.createCollection(admin.token, 'messages', { text: { type: 'String' } });
  await api.allow(admin.token, 'user', 'messages', 'read');
});

after(async () => {
  for (const socket of sockets) socket.disconnect();
  if (server) await server.close();
});

async function postMessage(text) {
  const created = await api.request('POST', '/items/messages', { token: admin.token, json: { text } });
  return created.data;
}

test(
  'events for user rooms still arrive after the server has had no socket at all',
  async () => {
    // The server has no socket yet. One comes and goes...
    const first = connect(ann.token);
    await eventually(() => first.socket.connected, { what: 'connect' });
    first.socket.disconnect();
    await eventually(async () => {
      const stats = await api.request('GET', '/stats/realtime', { token: admin.token });
      return stats.data.connections === 0;
    });
    // ...and the next one must still get what is sent to its user room.
    const { socket } = connect(ann.token);
    await eventually(() => socket.connected, { what: 'connect' });
    const shown = record(socket, 'notification.new');
    await api.request('POST', '/notifications/send', {
      token: admin.token,
      json: { type: 'info', title: 'Still there?', message: '...', userIds: [ann.user.id] },
    });
    await eventually(() => shown.length === 1, { timeout: 3000, what: 'notification.new' });
    socket.disconnect();
  },
);

test('server restart: the client reconnects by itself and receives events again', { timeout: 30_000 }, async () => {
  const { socket, happened } = connect(ann.token);
  await eventually(() => socket.connected, { what: 'connect' });
  const before = socket.id;
  const messages = [];
  socket.on('item.created', (data) => {
    if (data.collection === 'messages') messages.push(data.item);
  });

  // A restart, as a deploy or `systemctl restart` does it: SIGTERM, and livebase
  // shuts down by itself (uvicorn re-raises the signal once it has finished).
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.killed, false, 'livebase did not stop within 3 s of SIGTERM');
  await eventually(() => happened.some((h) => h.event === 'disconnect'), { what: 'disconnect' });
  assert.deepEqual(happened[1], { event: 'disconnect', reason: 'transport close' });
  assert.equal(socket.active, true, 'the client keeps trying: the server did not refuse it');

  await server.start(); // same port, same database, same secret: the token is still good
  await eventually(() => socket.connected, { timeout: RECONNECT_TIMEOUT, what: 'the reconnection' });
  // Its session is recovered (SPEC §11): same id; tests/js/recovery.test.mjs has the details.
  assert.equal(socket.recovered, true);
  assert.equal(socket.id, before);
  assert.equal(happened.filter((h) => h.event === 'connect').length, 2);

  const message = await postMessage('after the restart');
  await eventually(() => messages.length === 1, { what: 'item.created after the restart' });
  assert.deepEqual(messages[0], message);
});

test('polling only: the client reconnects by itself after the server was killed', { timeout: 30_000 }, async () => {
  const { socket, happened } = connect(ann.token, { transports: ['polling'] });
  await eventually(() => socket.connected, { what: 'connect' });
  const messages = record(socket, 'item.created');

  await server.stop('SIGKILL');
  await eventually(() => happened.some((h) => h.event === 'disconnect'), { what: 'disconnect' });
  assert.equal(happened[1].event, 'disconnect');
  assert.equal(socket.active, true);

  await server.start();
  await eventually(() => socket.connected, { timeout: RECONNECT_TIMEOUT, what: 'the reconnection' });
  assert.equal(socket.io.engine.transport.name, 'polling');

  const message = await postMessage('polled after the restart');
  await eventually(() => messages.some((data) => data.item.id === message.id), { what: 'item.created' });
});
