// Collaboration (SPEC §13; docs/realtime.md, "Broadcast" and "Room presence") with
// the official socket.io-client: `broadcast` passes a message to the other sockets
// of a room as `room.message`; `presence.track` / `untrack` / `list` keep who is in
// a room, announced with `presence.join` / `presence.leave`. The Python side is
// tests/realtime/test_broadcast.py and tests/realtime/test_room_presence.py.
//
// Negative checks end with a sentinel: an item written to `messages`, which every
// client here reads. A write's events are handed to the sockets before its
// response, after whatever was sent to them before (a broadcast is sent before its
// ack), so once the sentinel is in, whatever was to come before it has come.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';

import { Gate } from './support/gate.mjs';
import { connectAsInTheGuide } from './support/guide.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, eventually, sleep } from './support/livebase.mjs';
import { TcpProxy } from './support/proxy.mjs';
import {
  REDIS_URL,
  createPgDatabase,
  deleteRedisKeys,
  dropPgDatabase,
  redis,
  uniqueName,
} from './support/services.mjs';

const QUICK = { timeout: 20_000 }; // each takes well under a second, or a grace or two
const CLUSTER = { timeout: 30_000 };
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const DECIMAL = /^\d+$/;
const RATE = 5; // SOCKET_BROADCAST_RATE: broadcasts a second per socket, and the burst
const GRACE_MS = 1000; // SOCKET_PRESENCE_GRACE

// -- helpers ----------------------------------------------------------------------------

let server;
let api;
let admin; // {token, user}
let ann;
let bob;
let cy;

// The cluster of the last group (two processes sharing PostgreSQL and Redis)
// starts together with the single server, as most of a start is Python's imports;
// both are up before the first test. Its failure fails only that group.
const cluster = {
  database: uniqueName('livebase_js'),
  redisKey: uniqueName('lbjs'),
  databaseUrl: null,
  nodes: [],
  users: null, // {ann, bob}
  failure: null,
};

async function startCluster() {
  // Both required.
  assert.deepEqual(await redis(['PING']), ['PONG']);
  cluster.databaseUrl = createPgDatabase(cluster.database);
  const settings = {
    DATABASE_URL: cluster.databaseUrl,
    CACHE_REDIS_URL: REDIS_URL,
    SOCKET_REDIS_KEY: cluster.redisKey,
    SOCKET_PRESENCE_GRACE: String(GRACE_MS / 1000),
    DEMO_ENABLED: 'false',
  };
  cluster.nodes = await Promise.all([Livebase.start(settings), Livebase.start(settings)]);
  const clusterApi = new Api(cluster.nodes[0].url);
  const [a, b] = await Promise.all(['ann', 'bob'].map((name) => clusterApi.register(`${name}@example.com`)));
  cluster.users = { ann: a, bob: b };
}

before(async () => {
  const clusterStarted = startCluster().then(
    () => null,
    (error) => error,
  );
  server = await Livebase.start({
    SOCKET_BROADCAST_RATE: String(RATE),
    SOCKET_PRESENCE_GRACE: String(GRACE_MS / 1000),
  });
  api = new Api(server.url);
  admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  [ann, bob, cy] = await Promise.all(['ann', 'bob', 'cy'].map((name) => api.register(`${name}@example.com`)));
  for (const name of ['messages', 'notes']) {
    await api.createCollection(admin.token, name, { text: { type: 'String' } });
    await api.allow(admin.token, 'user', name, 'read');
  }
  cluster.failure = await clusterStarted;
});

after(async () => {
  await Promise.all([server?.close(), ...cluster.nodes.map((node) => node.close())]);
  if (cluster.databaseUrl) {
    dropPgDatabase(cluster.database);
    await deleteRedisKeys(cluster.redisKey);
  }
});

/**
 * The guide's client at `url` (the server's unless given), reconnecting quickly,
 * behind a gate (closed: a reconnect waits before its CONNECT packet), with a log
 * of every event it receives: `{event, payload, args, at}` (`args` ends with the
 * offset; `at`, performance.now()). Disconnected when test `t` ends.
 */
function connect(t, token, url = server.url) {
  const gate = new Gate();
  const { socket, happened } = connectAsInTheGuide(url, token, {
    auth: (send) => gate.passed().then(() => send({ token })),
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  const log = [];
  socket.onAny((event, ...args) => log.push({ event, payload: args[0], args, at: performance.now() }));
  t.after(() => socket.disconnect());
  return { socket, happened, gate, log };
}

/** The `count`-th `connected` payload (1-based), waiting for it. */
async function hello(c, count = 1) {
  const hellos = () => c.log.filter((e) => e.event === 'connected');
  await eventually(() => hellos().length >= count, { what: `connected #${count}` });
  return hellos()[count - 1].payload;
}

async function join(c, room) {
  assert.deepEqual(await c.socket.emitWithAck('join', room), { success: true, room });
}

/** One connected client per token, each in `room`. */
async function inRoom(t, room, tokens, url) {
  const clients = tokens.map((token) => connect(t, token, url));
  for (const c of clients) {
    await hello(c);
    await join(c, room);
  }
  return clients;
}

/** The payloads of `event` that `c` received, in order. */
const received = (c, event) => c.log.filter((e) => e.event === event).map((e) => e.payload);

/** Wait until `c` has received `count` of `event`; answer the last of them. */
async function nth(c, event, count = 1, timeout = 5000) {
  await eventually(() => received(c, event).length >= count, { timeout, what: `${event} #${count}` });
  return received(c, event)[count - 1];
}

const texts = (c) =>
  c.log
    .filter((e) => e.event === 'item.created' && e.payload.collection === 'messages')
    .map((e) => e.payload.item.text);

let marks = 0;

/** Write to `messages` and wait until every client given has its `item.created`. */
async function sentinel(...clients) {
  const text = `sentinel ${++marks}`;
  await api.request('POST', '/items/messages', { token: admin.token, json: { text } });
  for (const c of clients) await eventually(() => texts(c).includes(text), { what: `"${text}"` });
  return text;
}

/** A refusal: `{success: false, message}`, the message containing `words`. */
function assertRefused(answer, words, request) {
  const why = JSON.stringify({ request, answer });
  assert.equal(answer.success, false, why);
  assert.deepEqual(Object.keys(answer).sort(), ['message', 'success'], why);
  assert.ok(answer.message.includes(words), why);
}

async function track(c, room, state) {
  assert.deepEqual(await c.socket.emitWithAck('presence.track', { room, state }), { success: true, room });
}

async function members(c, room) {
  const answer = await c.socket.emitWithAck('presence.list', { room });
  assert.deepEqual(Object.keys(answer).sort(), ['members', 'room', 'success'], JSON.stringify(answer));
  assert.equal(answer.success, true);
  assert.equal(answer.room, room);
  return byKey(answer.members);
}

/** Members in the order of their keys (the server's own order is not promised). */
const byKey = (list) => list.toSorted((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

/** The presence events `c` received about `room`: `[join | leave, key, state]`. */
const presence = (c, room) =>
  c.log
    .filter((e) => e.event.startsWith('presence.') && e.payload.room === room)
    .map((e) => [e.event.slice('presence.'.length), e.payload.key, e.payload.state]);

/** How many sockets the server has in `room` (GET /stats/realtime). */
async function socketsIn(room, url = server.url) {
  const stats = await new Api(url).request('GET', '/stats/realtime', { token: admin.token });
  return stats.data.rooms[room] ?? 0;
}

// -- broadcast ---------------------------------------------------------------------------

test('a broadcast reaches the other members as room.message: not the sender, not outsiders', QUICK, async (t) => {
  const room = 'board:hello';
  const [sender, bobs, admins] = await inRoom(t, room, [ann.token, bob.token, admin.token]);
  const [outsider] = await inRoom(t, 'board:elsewhere', [cy.token]);
  const bobsOffset = bobs.socket._lastOffset;
  assert.match(bobsOffset, DECIMAL);

  const cursor = { x: 120, y: 48 };
  const answer = await sender.socket.emitWithAck('broadcast', { room, event: 'cursor', data: cursor });
  assert.deepEqual(answer, { success: true, room });
  for (const c of [bobs, admins]) {
    const message = await nth(c, 'room.message');
    assert.deepEqual(message, {
      room,
      event: 'cursor',
      data: cursor,
      from: { userId: ann.user.id, socketId: sender.socket.id },
      timestamp: message.timestamp,
    });
    assert.match(message.timestamp, ISO_UTC);
  }
  // Like any event, it ends with the socket's current offset, and does not move it.
  const [entry] = bobs.log.filter((e) => e.event === 'room.message');
  assert.equal(entry.args.length, 2, 'room.message ends with an offset');
  assert.equal(entry.args[1], bobsOffset);

  // The client's event name arrives only inside room.message, whatever it looks like.
  const lookalikes = [
    { event: 'item.created', data: { collection: 'messages', item: { id: 'forged', text: 'forged' } } },
    { event: 'connected', data: { userId: admin.user.id, role: 'administrator' } },
    { event: 'presence.join', data: null },
    { event: 'anything at all', data: ['any', 'JSON', 1, true, { nested: [null] }] },
  ];
  for (const request of lookalikes) {
    assert.deepEqual(await sender.socket.emitWithAck('broadcast', { room, ...request }), { success: true, room });
  }
  const mark = await sentinel(sender, bobs, admins, outsider);

  for (const c of [bobs, admins]) {
    assert.deepEqual(
      received(c, 'room.message').map((m) => [m.event, m.data, m.from.socketId]),
      [{ event: 'cursor', data: cursor }, ...lookalikes].map((b) => [b.event, b.data, sender.socket.id]),
    );
    assert.deepEqual(
      c.log.map((e) => e.event),
      ['connected', ...Array(1 + lookalikes.length).fill('room.message'), 'item.created'],
    );
    assert.deepEqual(texts(c), [mark]);
  }
  assert.deepEqual(
    sender.log.map((e) => e.event),
    ['connected', 'item.created'],
    'the sender does not get its own messages',
  );
  assert.deepEqual(
    outsider.log.map((e) => e.event),
    ['connected', 'item.created'],
    'nor does a socket outside the room',
  );
});

test('the members of an item room broadcast to each other', QUICK, async (t) => {
  const created = await api.request('POST', '/items/notes', { token: admin.token, json: { text: 'shared' } });
  const room = `item:notes:${created.data.id}`;
  const [anns, bobs] = await inRoom(t, room, [ann.token, bob.token]);
  assert.deepEqual(await anns.socket.emitWithAck('broadcast', { room, event: 'typing', data: null }), {
    success: true,
    room,
  });
  const message = await nth(bobs, 'room.message');
  assert.deepEqual(message, {
    room,
    event: 'typing',
    data: null,
    from: { userId: ann.user.id, socketId: anns.socket.id },
    timestamp: message.timestamp,
  });
});

test('a refused broadcast says why and sends nothing', QUICK, async (t) => {
  const room = 'board:refusals';
  // Two sockets of the administrator: the second is in every room the first is
  // refused (its user room, collection:messages, presence), so it would get a leak.
  const [first, second] = await inRoom(t, room, [admin.token, admin.token]);
  for (const c of [first, second]) await join(c, 'presence');
  const [elsewhere] = await inRoom(t, 'board:not-joined', [bob.token]);

  const eventRule = 'event must be a string of 1 to 100 characters';
  const refusals = [
    [null, 'broadcast takes {room, event, data}'],
    [room, 'broadcast takes {room, event, data}'],
    [[room, 'cursor'], 'broadcast takes {room, event, data}'],
    [{ event: 'x' }, 'room must be a string'],
    [{ room: 5, event: 'x' }, 'room must be a string'],
    [{ room: '', event: 'x' }, 'room names are 1 to 200 characters'],
    [{ room }, eventRule],
    [{ room, event: '' }, eventRule],
    [{ room, event: 'x'.repeat(101) }, eventRule],
    [{ room, event: 5 }, eventRule],
    [{ room, event: ['cursor'] }, eventRule],
    [{ room: 'board:not-joined', event: 'x' }, "join 'board:not-joined' before broadcasting to it"],
    [{ room: `user:${admin.user.id}`, event: 'x' }, 'no broadcasts in'],
    [{ room: 'collection:messages', event: 'x' }, 'no broadcasts in'],
    [{ room: 'presence', event: 'x' }, 'no broadcasts in'],
    [{ room: second.socket.id, event: 'x' }, "a socket's own room"],
  ];
  for (const [request, words] of refusals) {
    assertRefused(await first.socket.emitWithAck('broadcast', request), words, request);
  }
  assertRefused(await first.socket.emitWithAck('broadcast'), 'broadcast takes', 'no argument');

  // What is allowed still goes: an event of exactly 100 characters, and one with no ack asked.
  const longest = 'x'.repeat(100);
  assert.deepEqual(await first.socket.emitWithAck('broadcast', { room, event: longest }), { success: true, room });
  first.socket.emit('broadcast', { room, event: 'no ack asked' });
  await sentinel(first, second, elsewhere);
  assert.deepEqual(
    received(second, 'room.message').map((m) => m.event),
    [longest, 'no ack asked'],
  );
  assert.deepEqual(
    [...new Set(second.log.map((e) => e.event))].sort(),
    ['connected', 'item.created', 'room.message'],
  );
  assert.deepEqual(received(elsewhere, 'room.message'), []);
  assert.ok(first.socket.connected, 'refusals do not cost the socket its connection');
});

test(`past SOCKET_BROADCAST_RATE (${RATE} a second) the ack says "rate limited" and nothing goes`, QUICK, async (t) => {
  const room = 'board:rate';
  const [anns, bobs] = await inRoom(t, room, [ann.token, bob.token]);

  // Sent at once: the bucket holds RATE, and refills by one every 1/RATE s.
  const burst = 3 * RATE;
  const answers = await Promise.all(
    Array.from({ length: burst }, (_, n) => anns.socket.emitWithAck('broadcast', { room, event: 'tick', data: n })),
  );
  const accepted = answers.flatMap((answer, n) => (answer.success ? [n] : []));
  assert.ok(accepted.length >= RATE && accepted.length < burst, JSON.stringify(answers));
  assert.deepEqual(accepted.slice(0, RATE), [...Array(RATE).keys()], 'the first RATE go through');
  for (const [n, answer] of answers.entries()) {
    const expected = accepted.includes(n) ? { success: true, room } : { success: false, message: 'rate limited' };
    assert.deepEqual(answer, expected, `broadcast #${n}`);
  }
  await sentinel(bobs);
  assert.deepEqual(
    received(bobs, 'room.message').map((m) => m.data),
    accepted,
    'exactly the accepted ones arrive',
  );

  // Another socket has its own allowance.
  assert.deepEqual(await bobs.socket.emitWithAck('broadcast', { room, event: 'tock' }), { success: true, room });
  assert.equal((await nth(anns, 'room.message')).event, 'tock');
  // And the bucket refills.
  await sleep(1000 / RATE + 100);
  assert.deepEqual(await anns.socket.emitWithAck('broadcast', { room, event: 'tick', data: 'again' }), {
    success: true,
    room,
  });
  assert.equal((await nth(bobs, 'room.message', accepted.length + 1)).data, 'again');
});

// -- room presence -------------------------------------------------------------------------

test('track announces a member to the whole room, tracker included; list, re-track, untrack', QUICK, async (t) => {
  const room = 'board:presence';
  const [anns, bobs] = await inRoom(t, room, [ann.token, bob.token]);
  const [outsider] = await inRoom(t, 'board:presence-elsewhere', [cy.token]);
  const key = anns.socket.id;
  const state = { name: 'Ann', color: '#e33' };

  await track(anns, room, state);
  for (const c of [anns, bobs]) {
    const joined = await nth(c, 'presence.join');
    assert.deepEqual(joined, { room, key, userId: ann.user.id, state, timestamp: joined.timestamp });
    assert.match(joined.timestamp, ISO_UTC);
  }
  const annAsMember = { key, userId: ann.user.id, state };
  assert.deepEqual(await bobs.socket.emitWithAck('presence.list', { room }), {
    success: true,
    room,
    members: [annAsMember],
  });

  const bobAsMember = { key: bobs.socket.id, userId: bob.user.id, state: { name: 'Bob' } };
  await track(bobs, room, bobAsMember.state);
  assert.equal((await nth(anns, 'presence.join', 2)).key, bobs.socket.id);
  const both = byKey([annAsMember, bobAsMember]);
  assert.deepEqual(await members(anns, room), both);

  // Tracking again replaces the state, with presence.join again: still one member per socket.
  const moved = { name: 'Ann', color: '#3e3', editing: 'note 7' };
  await track(anns, room, moved);
  for (const c of [anns, bobs]) assert.deepEqual((await nth(c, 'presence.join', 3)).state, moved);
  assert.deepEqual(
    await members(bobs, room),
    both.map((m) => (m.key === key ? { ...m, state: moved } : m)),
  );

  assert.deepEqual(await anns.socket.emitWithAck('presence.untrack', { room }), { success: true, room });
  for (const c of [anns, bobs]) {
    const left = await nth(c, 'presence.leave');
    assert.deepEqual(left, { room, key, userId: ann.user.id, timestamp: left.timestamp });
    assert.match(left.timestamp, ISO_UTC);
  }
  assert.deepEqual(await members(anns, room), [bobAsMember]);
  assertRefused(await anns.socket.emitWithAck('presence.untrack', { room }), `not tracked in '${room}'`);

  await sentinel(anns, bobs, outsider);
  const expected = [
    ['join', key, state],
    ['join', bobs.socket.id, bobAsMember.state],
    ['join', key, moved],
    ['leave', key, undefined],
  ];
  assert.deepEqual(presence(bobs, room), expected);
  assert.deepEqual(presence(anns, room), expected);
  assert.deepEqual(outsider.log.map((e) => e.event), ['connected', 'item.created'], 'nothing outside the room');
});

test('leaving the room ends the membership: presence.leave to those still in it', QUICK, async (t) => {
  const room = 'board:leaving';
  const [anns, bobs] = await inRoom(t, room, [ann.token, bob.token]);
  const key = anns.socket.id;
  await track(anns, room, { name: 'Ann' });
  await nth(bobs, 'presence.join');

  assert.deepEqual(await anns.socket.emitWithAck('leave', room), { success: true, room });
  const left = await nth(bobs, 'presence.leave');
  assert.deepEqual(left, { room, key, userId: ann.user.id, timestamp: left.timestamp });
  assert.deepEqual(await members(bobs, room), []);
  await sentinel(anns, bobs);
  assert.deepEqual(presence(anns, room), [['join', key, { name: 'Ann' }]], 'no longer in the room: no leave');
});

test('presence requests are refused with a reason', QUICK, async (t) => {
  const room = 'board:presence-refusals';
  const [admins, watcher] = await inRoom(t, room, [admin.token, admin.token]);
  for (const c of [admins, watcher]) await join(c, 'presence');
  const refusals = [
    ['presence.track', null, 'room must be a string'],
    ['presence.track', { room: 'board:not-joined', state: {} }, "join 'board:not-joined' first"],
    ['presence.track', { room, state: [1] }, 'state must be a JSON object'],
    ['presence.track', { room, state: 'here' }, 'state must be a JSON object'],
    ['presence.track', { room, state: { a: 'x'.repeat(5000) } }, 'state is limited to 4096 bytes of JSON'],
    ['presence.track', { room: `user:${admin.user.id}`, state: {} }, "it is the server's room"],
    ['presence.track', { room: 'collection:messages', state: {} }, "it is the server's room"],
    ['presence.track', { room: 'presence', state: {} }, "it is the server's room"],
    ['presence.untrack', { room }, `not tracked in '${room}'`],
    ['presence.untrack', 5, 'room must be a string'],
    ['presence.list', { room: 'board:not-joined' }, "join 'board:not-joined' first"],
    ['presence.list', {}, 'room must be a string'],
    ['presence.list', { room: 'presence' }, "it is the server's room"],
  ];
  for (const [event, request, words] of refusals) {
    assertRefused(await admins.socket.emitWithAck(event, request), words, { event, request });
  }
  // Just under 4 KiB of JSON is a state.
  const biggest = { a: 'x'.repeat(4096 - '{"a":""}'.length) };
  await track(admins, room, biggest);
  assert.deepEqual((await nth(watcher, 'presence.join')).state, biggest);
  await sentinel(admins, watcher);
  assert.deepEqual(
    watcher.log.filter((e) => e.event.startsWith('presence.')).map((e) => e.payload.room),
    [room],
    'only the accepted track was announced',
  );
});

test(`a disconnect ends the membership after SOCKET_PRESENCE_GRACE (${GRACE_MS} ms), not before`, QUICK, async (t) => {
  const room = 'board:disconnect';
  const [anns, bobs] = await inRoom(t, room, [ann.token, bob.token]);
  const key = anns.socket.id;
  await track(anns, room, { name: 'Ann' });
  await nth(bobs, 'presence.join');

  const gone = performance.now();
  anns.socket.disconnect();
  await sentinel(bobs);
  // Still within the grace: no leave yet, still listed.
  const listed = await members(bobs, room);
  const checkedAt = performance.now() - gone;
  assert.ok(checkedAt < GRACE_MS, `the checks within the grace took ${checkedAt} ms`);
  assert.deepEqual(received(bobs, 'presence.leave'), []);
  assert.deepEqual(listed, [{ key, userId: ann.user.id, state: { name: 'Ann' } }]);

  const left = await nth(bobs, 'presence.leave', 1, GRACE_MS + 5000);
  const [{ at }] = bobs.log.filter((e) => e.event === 'presence.leave');
  assert.ok(at - gone >= GRACE_MS, `presence.leave came ${at - gone} ms after the disconnect`);
  assert.deepEqual(left, { room, key, userId: ann.user.id, timestamp: left.timestamp });
  assert.deepEqual(await members(bobs, room), []);
});

/** Ann through `proxy`, in `room` with bob and cy (on the server directly), all three tracked. */
async function threeMembers(t, room) {
  const proxy = await TcpProxy.start(server.port);
  t.after(() => proxy.close());
  const [bobs, cys] = await inRoom(t, room, [bob.token, cy.token]);
  const [anns] = await inRoom(t, room, [ann.token], proxy.url);
  for (const [c, name] of [
    [anns, 'Ann'],
    [bobs, 'Bob'],
    [cys, 'Cy'],
  ]) {
    await track(c, room, { name });
  }
  await nth(bobs, 'presence.join', 3);
  assert.equal(await socketsIn(room), 3);
  return { proxy, anns, bobs, cys };
}

/** Cut ann's connection with her gate closed; wait until the server has seen her socket go. */
async function cutOff(proxy, anns, room) {
  anns.gate.close();
  // Taken before the cut: the server may see the socket go before the next line runs.
  const cut = performance.now();
  proxy.cutAll();
  await eventually(() => !anns.socket.connected, { what: "ann's disconnect" });
  await eventually(async () => (await socketsIn(room)) === 2, { what: 'the server to see the socket go' });
  return cut;
}

test('a socket cut off and recovered within the grace stays a member, without a word', QUICK, async (t) => {
  const room = 'board:recovered';
  const { proxy, anns, bobs, cys } = await threeMembers(t, room);
  const key = anns.socket.id;
  const before = await members(bobs, room);

  const cut = await cutOff(proxy, anns, room);
  anns.gate.open();
  assert.deepEqual(await hello(anns, 2), { userId: ann.user.id, role: 'user', recovered: true, missed: 0 });
  const away = performance.now() - cut;
  assert.ok(away < GRACE_MS, `back ${away} ms after the cut: not within the grace`);
  assert.equal(anns.socket.id, key);
  assert.equal(await socketsIn(room), 3, 'the recovered socket is in the room again');

  // Cy goes now, for good: her presence.leave, a grace later, comes after ann's
  // would have (her grace started after ann's).
  const cysKey = cys.socket.id;
  cys.socket.disconnect();
  await nth(bobs, 'presence.leave', 1, GRACE_MS + 5000);
  await sentinel(anns, bobs);
  assert.deepEqual(
    presence(bobs, room).filter(([kind]) => kind === 'leave'),
    [['leave', cysKey, undefined]],
  );
  assert.deepEqual(
    await members(bobs, room),
    before.filter((m) => m.key !== cysKey),
  );
  assert.deepEqual(await members(anns, room), await members(bobs, room));

  // Still a member in every way: tracking again updates it, untracking ends it.
  await track(anns, room, { name: 'Ann', back: true });
  assert.deepEqual((await nth(bobs, 'presence.join', 4)).state, { name: 'Ann', back: true });
  assert.deepEqual(await anns.socket.emitWithAck('presence.untrack', { room }), { success: true, room });
  assert.equal((await nth(bobs, 'presence.leave', 2)).key, key);
});

test('recovered after the grace: presence.leave, then presence.join again with its state', QUICK, async (t) => {
  // The session outlives the membership (SOCKET_RECOVERY_WINDOW, 120 s): the member
  // is announced again, so that the room's view matches the client's
  // (src/livebase/realtime/room_presence.py, `recovered`).
  const room = 'board:late';
  const { proxy, anns, bobs, cys } = await threeMembers(t, room);
  const key = anns.socket.id;

  const cut = await cutOff(proxy, anns, room);
  const left = await nth(bobs, 'presence.leave', 1, GRACE_MS + 5000);
  const [{ at }] = bobs.log.filter((e) => e.event === 'presence.leave');
  assert.ok(at - cut >= GRACE_MS, `presence.leave came ${at - cut} ms after the cut`);
  assert.deepEqual(left, { room, key, userId: ann.user.id, timestamp: left.timestamp });
  const others = [bobs.socket.id, cys.socket.id].sort();
  assert.deepEqual(
    (await members(bobs, room)).map((m) => m.key),
    others,
  );

  anns.gate.open();
  assert.deepEqual(await hello(anns, 2), { userId: ann.user.id, role: 'user', recovered: true, missed: 0 });
  const joined = await nth(bobs, 'presence.join', 4);
  assert.deepEqual(joined, { room, key, userId: ann.user.id, state: { name: 'Ann' }, timestamp: joined.timestamp });
  assert.deepEqual(
    (await members(bobs, room)).map((m) => m.key),
    [key, ...others].sort(),
    'listed again',
  );
});

// -- two processes sharing PostgreSQL and Redis ----------------------------------------------

describe('two processes sharing PostgreSQL and Redis', () => {
  let nodes;
  let users;

  before(() => {
    if (cluster.failure) throw cluster.failure;
    ({ nodes, users } = cluster);
  });

  /** Ann on the first process, bob on the second, both in `room`. */
  async function apart(t, room) {
    const [here] = await inRoom(t, room, [users.ann.token], nodes[0].url);
    const [there] = await inRoom(t, room, [users.bob.token], nodes[1].url);
    return { here, there };
  }

  test('a broadcast crosses processes, both ways, once, never back to its sender', CLUSTER, async (t) => {
    const room = 'board:cluster';
    const { here, there } = await apart(t, room);
    // A second member on the first process, which gets both sides locally or from afar.
    const [nearby] = await inRoom(t, room, [users.bob.token], nodes[0].url);

    // Ping-pong: each message is sent once the previous one has arrived, so a
    // socket's own message, were it sent back, would come before the next one.
    const send = async (c, data) =>
      assert.deepEqual(await c.socket.emitWithAck('broadcast', { room, event: 'ping', data }), { success: true, room });
    await send(here, 1);
    const first = await nth(there, 'room.message');
    assert.deepEqual(first, {
      room,
      event: 'ping',
      data: 1,
      from: { userId: users.ann.user.id, socketId: here.socket.id },
      timestamp: first.timestamp,
    });
    await send(there, 2);
    assert.deepEqual((await nth(here, 'room.message')).from, { userId: users.bob.user.id, socketId: there.socket.id });
    await send(here, 3);
    await nth(there, 'room.message', 2);
    await send(there, 4);
    await nth(here, 'room.message', 2);
    await nth(nearby, 'room.message', 4);

    assert.deepEqual(received(here, 'room.message').map((m) => m.data), [2, 4]);
    assert.deepEqual(received(there, 'room.message').map((m) => m.data), [1, 3]);
    assert.deepEqual(received(nearby, 'room.message').map((m) => m.data), [1, 2, 3, 4]);
  });

  test('presence crosses processes: join, list from either, leave after a disconnect', CLUSTER, async (t) => {
    const room = 'board:cluster-presence';
    const { here, there } = await apart(t, room);

    await track(there, room, { who: 'there' });
    const joined = await nth(here, 'presence.join');
    assert.deepEqual(joined, {
      room,
      key: there.socket.id,
      userId: users.bob.user.id,
      state: { who: 'there' },
      timestamp: joined.timestamp,
    });
    await track(here, room, { who: 'here' });
    assert.equal((await nth(there, 'presence.join', 2)).key, here.socket.id);
    const both = byKey([
      { key: here.socket.id, userId: users.ann.user.id, state: { who: 'here' } },
      { key: there.socket.id, userId: users.bob.user.id, state: { who: 'there' } },
    ]);
    assert.deepEqual(await members(here, room), both);
    assert.deepEqual(await members(there, room), both);

    const key = there.socket.id;
    const gone = performance.now();
    there.socket.disconnect();
    const left = await nth(here, 'presence.leave', 1, GRACE_MS + 5000);
    const [{ at }] = here.log.filter((e) => e.event === 'presence.leave');
    assert.ok(at - gone >= GRACE_MS, `presence.leave came ${at - gone} ms after the disconnect`);
    assert.deepEqual(left, { room, key, userId: users.bob.user.id, timestamp: left.timestamp });
    assert.deepEqual(await members(here, room), both.filter((m) => m.key !== key));
  });
});
