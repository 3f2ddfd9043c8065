// Live queries (docs/realtime.md, "Live queries"; src/livebase/realtime/live_queries.py)
// with the official socket.io-client: `subscribe` answers a query's snapshot at a
// change-log offset, then `subscription.added` / `changed` / `removed` keep it up
// to date, through a recovery too. The Python side is
// tests/realtime/test_live_queries.py.
//
// The list an app keeps in sync is docs/realtime.md's `liveQuery`, run as
// printed there (`fromTheDocs`).
//
// Negative checks end with a sentinel: a later change the client must get. A
// socket receives its events in commit order, so once the sentinel is in,
// whatever was to come before it has come.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Gate } from './support/gate.mjs';
import { connectAsInTheGuide } from './support/guide.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, Api, Livebase, REPO, eventually } from './support/livebase.mjs';
import { TcpProxy } from './support/proxy.mjs';

const QUICK = { timeout: 20_000 }; // each takes well under a second
const DECIMAL = /^\d+$/;
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
// SOCKET_RECOVERY_MAX_EVENTS (default 10 000): past this many missed events a
// reconnect is a new session. The test of a non-recovered reconnect misses more.
const RECOVERY_MAX_EVENTS = 20;

const MESSAGES = {
  text: { type: 'String' },
  channel: { type: 'String' },
  rank: { type: 'Integer' },
  owner: { type: 'String' },
  secret: { type: 'String' },
};
const GENERAL = { channel: { eq: 'general' } };

// -- the list an app keeps in sync -------------------------------------------------------

const FENCE = '```';

/** The function `name` of docs/realtime.md: the js block that defines it, as printed. */
function fromTheDocs(name) {
  const docs = readFileSync(join(REPO, 'docs', 'realtime.md'), 'utf8');
  const start = docs.indexOf(`${FENCE}js\nfunction ${name}(`);
  assert.ok(start >= 0, `docs/realtime.md: no js block defining ${name}`);
  const code = docs.slice(start + `${FENCE}js\n`.length, docs.indexOf(FENCE, start + FENCE.length));
  return new Function(`${code}\nreturn ${name};`)();
}

// liveQuery(socket, query, render): subscribes on every connect that is not a
// recovery, keeps a Map of items by id, and calls render(items) after each change.
const liveQuery = fromTheDocs('liveQuery');

/** `liveQuery` on client `c`, rendering into `shown.items` (a Map by id). */
function follow(c, query) {
  const shown = { items: new Map(), renders: 0 };
  liveQuery(c.socket, query, (items) => {
    shown.items = byId(items);
    shown.renders += 1;
  });
  return shown;
}

// -- helpers ---------------------------------------------------------------------------

let server;
let api;
let admin; // {token, user}
let ann;
let bob;

before(async () => {
  server = await Livebase.start({ SOCKET_RECOVERY_MAX_EVENTS: String(RECOVERY_MAX_EVENTS) });
  api = new Api(server.url);
  admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  ann = await api.register('ann@example.com');
  bob = await api.register('bob@example.com');
});

after(async () => {
  await server?.close();
});

/**
 * The guide's client at `url` (the server's unless given), reconnecting quickly,
 * behind a gate (closed: a reconnect waits before its CONNECT packet), with a log
 * of every event it receives: `{event, payload, args}` (`args` ends with the
 * offset), and of the events it sends (`sent`). Disconnected when test `t` ends.
 */
function connect(t, token, url = server.url) {
  const gate = new Gate();
  const { socket, happened } = connectAsInTheGuide(url, token, {
    auth: (send) => gate.passed().then(() => send({ token })),
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  const log = [];
  const sent = [];
  socket.onAny((event, ...args) => log.push({ event, payload: args[0], args }));
  socket.onAnyOutgoing((event, payload) => sent.push({ event, payload }));
  t.after(() => socket.disconnect());
  return { socket, happened, gate, log, sent };
}

/** The `count`-th `connected` payload (1-based), waiting for it. */
async function hello(c, count = 1) {
  const hellos = () => c.log.filter((e) => e.event === 'connected');
  await eventually(() => hellos().length >= count, { what: `connected #${count}` });
  return hellos()[count - 1].payload;
}

/** A connected client, its `connected` received. */
async function connected(t, token, url) {
  const c = connect(t, token, url);
  await hello(c);
  return c;
}

const CHANGES = new Set(['subscription.added', 'subscription.changed', 'subscription.removed']);

/** The changes `subscription` got, from the log: `[added | changed | removed, item]`, in order. */
function changes(log, subscription) {
  return log
    .filter((e) => CHANGES.has(e.event) && e.payload.subscription === subscription)
    .map((e) => [e.event.slice('subscription.'.length), e.payload.item]);
}

async function subscribe(c, request) {
  const answer = await c.socket.emitWithAck('subscribe', request);
  assert.equal(answer.success, true, JSON.stringify(answer));
  return answer;
}

/** A refusal: `{success: false, message}` with a message that says something. */
function assertRefused(answer, words) {
  assert.equal(answer.success, false, JSON.stringify(answer));
  assert.deepEqual(Object.keys(answer).sort(), ['message', 'success']);
  assert.match(answer.message, new RegExp(words));
}

/** A REST client for one collection, as the administrator unless told. */
function items(collection) {
  const path = `/items/${collection}`;
  const as = (token) => ({ token: token ?? admin.token });
  return {
    async create(item) {
      return (await api.request('POST', path, { ...as(), json: item })).data;
    },
    async createMany(list) {
      return (await api.request('POST', `${path}/bulk`, { ...as(), json: list })).data;
    },
    async update(id, changes) {
      return (await api.request('PATCH', `${path}/${id}`, { ...as(), json: changes })).data;
    },
    async remove(id) {
      await api.request('DELETE', `${path}/${id}`, as());
    },
    /** GET /items/{collection} with `query` (objects JSON-encoded), as `token`. */
    async list(query = {}, token) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        params.set(key, typeof value === 'string' ? value : JSON.stringify(value));
      }
      return (await api.request('GET', `${path}?${params}`, as(token))).data;
    },
  };
}

async function makeCollection(name, readers = []) {
  await api.createCollection(admin.token, name, MESSAGES);
  for (const [role, rule] of readers) await api.allow(admin.token, role, name, 'read', rule);
  return items(name);
}

const byId = (list) => new Map(list.map((item) => [item.id, item]));

// -- subscribing -----------------------------------------------------------------------

test('the snapshot honours filter, fields (with id), sort and limit, at a decimal offset', QUICK, async (t) => {
  const snapshot = await makeCollection('snapshot');
  const channels = ['general', 'random', 'general', 'general', 'random', 'general'];
  await snapshot.createMany(channels.map((channel, rank) => ({ text: `m${rank}`, channel, rank, secret: 's' })));
  const admin1 = await connected(t, admin.token);

  const query = { filter: GENERAL, fields: ['text', 'rank'], sort: ['-rank'], limit: 2 };
  const request = { collection: 'snapshot', ...query };
  const answer = await subscribe(admin1, request);
  assert.deepEqual(Object.keys(answer).sort(), ['items', 'offset', 'subscription', 'success']);
  assert.deepEqual(
    answer.items.map((item) => [Object.keys(item).sort(), item.text, item.rank]),
    [
      [['id', 'rank', 'text'], 'm5', 5],
      [['id', 'rank', 'text'], 'm3', 3],
    ],
  );
  assert.match(answer.offset, DECIMAL);
  assert.ok(BigInt(answer.offset) > 0n);
  assert.equal(typeof answer.subscription, 'string');
  assert.ok(answer.subscription.length > 0);
  // What GET /items/{c} answers to the same query.
  assert.deepEqual(answer.items, await snapshot.list(query));

  // The other spellings: fields as a comma list, sort as an object; limit defaults to 100.
  const other = await subscribe(admin1, {
    collection: 'snapshot',
    filter: GENERAL,
    fields: 'text,rank',
    sort: { rank: 'asc' },
  });
  assert.deepEqual(
    other.items.map((item) => item.text),
    ['m0', 'm2', 'm3', 'm5'],
  );
  // Sort and limit shape the snapshot only: the subscription is the same one.
  assert.equal(other.subscription, answer.subscription);

  await snapshot.createMany(Array.from({ length: 100 }, (_, i) => ({ text: `bulk ${i}`, channel: 'bulk' })));
  const all = await subscribe(admin1, { collection: 'snapshot' });
  assert.equal(all.items.length, 100);
  assert.equal((await subscribe(admin1, { collection: 'snapshot', limit: 1000 })).items.length, 106);

  // The same query again on this socket: a fresh snapshot, the same id.
  const first = answer.items[0];
  await snapshot.update(first.id, { text: 'm5 again' });
  const again = await subscribe(admin1, request);
  assert.equal(again.subscription, answer.subscription);
  assert.deepEqual(again.items[0], { ...first, text: 'm5 again' });
  assert.ok(BigInt(again.offset) > BigInt(answer.offset));
});

test('created, updated within, into and out of the filter, deleted: added, changed, removed', QUICK, async (t) => {
  const transitions = await makeCollection('transitions');
  const admin1 = await connected(t, admin.token);
  const { subscription, offset } = await subscribe(admin1, {
    collection: 'transitions',
    filter: GENERAL,
    fields: ['text', 'rank'],
  });

  const a = await transitions.create({ text: 'a', channel: 'general', rank: 1 }); // added
  const b = await transitions.create({ text: 'b', channel: 'random', rank: 2 }); // nothing
  await transitions.update(a.id, { text: 'a, edited' }); // changed
  await transitions.update(b.id, { channel: 'general' }); // added
  await transitions.update(b.id, { channel: 'random' }); // removed
  await transitions.update(a.id, { owner: 'someone', secret: 'x' }); // nothing: not among its fields
  await transitions.remove(a.id); // removed
  const sentinel = await transitions.create({ text: 'c', channel: 'general', rank: 3 });
  await eventually(() => changes(admin1.log, subscription).length === 6, { what: 'six subscription events' });

  assert.deepEqual(changes(admin1.log, subscription), [
    ['added', { id: a.id, text: 'a', rank: 1 }],
    ['changed', { id: a.id, text: 'a, edited', rank: 1 }],
    ['added', { id: b.id, text: 'b', rank: 2 }],
    ['removed', { id: b.id }],
    ['removed', { id: a.id }],
    ['added', { id: sentinel.id, text: 'c', rank: 3 }],
  ]);
  const events = admin1.log.filter((e) => e.event.startsWith('subscription.'));
  for (const { payload } of events) {
    assert.deepEqual(Object.keys(payload).sort(), ['collection', 'item', 'subscription', 'timestamp']);
    assert.equal(payload.collection, 'transitions');
    assert.match(payload.timestamp, ISO_UTC);
  }
  // Each ends with its change's offset: after the snapshot's, in commit order.
  const offsets = events.map((e) => e.args.at(-1));
  for (const o of offsets) assert.match(o, DECIMAL);
  assert.ok(BigInt(offsets[0]) > BigInt(offset));
  for (let i = 1; i < offsets.length; i++) assert.ok(BigInt(offsets[i]) > BigInt(offsets[i - 1]), `${offsets}`);
});

test('items written while subscribing are in the snapshot or come as an event, never both', QUICK, async (t) => {
  const racing = await makeCollection('racing');
  const admin1 = await connected(t, admin.token);
  let writing = true;
  const written = [];
  const write = async (writer) => {
    for (let n = 0; writing; n++) {
      written.push((await racing.create({ text: `${writer}.${n}`, channel: 'general' })).id);
    }
  };
  const writers = ['a', 'b', 'c'].map(write);
  await eventually(() => written.length >= 10, { what: 'writes before subscribing' });
  const answer = await subscribe(admin1, { collection: 'racing', filter: GENERAL, limit: 1000 });
  const count = written.length;
  await eventually(() => written.length >= count + 10, { what: 'writes after subscribing' });
  writing = false;
  await Promise.all(writers);
  const sentinel = await racing.create({ text: 'sentinel', channel: 'general' });
  const events = () => changes(admin1.log, answer.subscription);
  await eventually(() => events().some(([, item]) => item.id === sentinel.id), { what: 'the sentinel' });

  const snapshot = answer.items.map((item) => item.id);
  assert.ok(snapshot.length >= 10, `${snapshot.length} in the snapshot`);
  assert.deepEqual(new Set(events().map(([event]) => event)), new Set(['added']));
  const added = events().map(([, item]) => item.id);
  assert.ok(added.length >= 8, `${added.length} added`); // 10 answered after the ack, 3 writers, the sentinel
  // Each item once: in the snapshot, or added after it.
  assert.deepEqual([...snapshot, ...added].sort(), [...written, sentinel.id].sort());
});

test('a user sees only the rows and fields its read permission allows', QUICK, async (t) => {
  const owned = await makeCollection('owned', [
    ['user', { fields: ['text', 'owner'], conditions: { owner: { eq: '$CURRENT_USER' } } }],
  ]);
  const annOld = await owned.create({ text: "ann's old", owner: ann.user.id, secret: 's' });
  const bobOld = await owned.create({ text: "bob's old", owner: bob.user.id, secret: 's' });
  const ann1 = await connected(t, ann.token);
  const bob1 = await connected(t, bob.token);

  const answer = await subscribe(ann1, { collection: 'owned' });
  assert.deepEqual(answer.items, [{ id: annOld.id, text: "ann's old", owner: ann.user.id }]);
  assert.deepEqual(answer.items, await owned.list({}, ann.token));
  const bobs = await subscribe(bob1, { collection: 'owned', fields: ['text'] });
  assert.deepEqual(bobs.items, [{ id: bobOld.id, text: "bob's old" }]);

  // Asking for, filtering or sorting on a field it may not read is refused, as on REST.
  assertRefused(await ann1.socket.emitWithAck('subscribe', { collection: 'owned', fields: ['secret'] }), 'secret');
  const bySecret = { collection: 'owned', filter: { secret: { startsWith: 's' } } };
  assertRefused(await ann1.socket.emitWithAck('subscribe', bySecret), 'secret');
  assertRefused(await ann1.socket.emitWithAck('subscribe', { collection: 'owned', sort: ['secret'] }), 'secret');

  const bobNew = await owned.create({ text: "bob's new", owner: bob.user.id, secret: 's' }); // not ann's
  await owned.update(annOld.id, { secret: 'changed' }); // not a field ann sees
  await owned.update(bobOld.id, { owner: ann.user.id }); // now ann's, no longer bob's
  await owned.update(annOld.id, { text: "ann's, edited" });
  const annNew = await owned.create({ text: "ann's new", owner: ann.user.id, secret: 's' }); // the sentinel
  await eventually(() => changes(ann1.log, answer.subscription).length === 3, { what: "ann's events" });

  assert.deepEqual(changes(ann1.log, answer.subscription), [
    ['added', { id: bobOld.id, text: "bob's old", owner: ann.user.id }],
    ['changed', { id: annOld.id, text: "ann's, edited", owner: ann.user.id }],
    ['added', { id: annNew.id, text: "ann's new", owner: ann.user.id }],
  ]);
  // Bob: his new item, his old one leaving him, then a sentinel of his.
  const bobLast = await owned.create({ text: "bob's last", owner: bob.user.id });
  await eventually(() => changes(bob1.log, bobs.subscription).length === 3, { what: "bob's events" });
  assert.deepEqual(changes(bob1.log, bobs.subscription), [
    ['added', { id: bobNew.id, text: "bob's new" }],
    ['removed', { id: bobOld.id }],
    ['added', { id: bobLast.id, text: "bob's last" }],
  ]);
  // No event (item.* included) carried a field they may not read.
  const readable = new Set(['id', 'text', 'owner']);
  for (const { payload } of [...ann1.log, ...bob1.log]) {
    if (payload.item) assert.deepEqual(Object.keys(payload.item).filter((key) => !readable.has(key)), []);
  }
});

test('unsubscribe stops the events; a second unsubscribe is refused', QUICK, async (t) => {
  const unsub = await makeCollection('unsub');
  const admin1 = await connected(t, admin.token);
  const admin2 = await connected(t, admin.token);
  const general = await subscribe(admin1, { collection: 'unsub', filter: GENERAL });
  const sentinels = await subscribe(admin1, { collection: 'unsub', filter: { channel: { eq: 'sentinel' } } });
  // An identical subscription on another socket is the same subscription...
  const shared = await subscribe(admin2, { collection: 'unsub', filter: GENERAL });
  assert.equal(shared.subscription, general.subscription);

  assert.deepEqual(await admin1.socket.emitWithAck('unsubscribe', { subscription: general.subscription }), {
    success: true,
    subscription: general.subscription,
  });
  const unheard = await unsub.create({ text: 'unheard', channel: 'general' });
  const sentinel = await unsub.create({ text: 'sentinel', channel: 'sentinel' });
  await eventually(() => changes(admin1.log, sentinels.subscription).length === 1, { what: 'the sentinel' });
  assert.deepEqual(changes(admin1.log, general.subscription), []);
  assert.deepEqual(changes(admin1.log, sentinels.subscription), [['added', sentinel]]);
  // ...which goes on there.
  await eventually(() => changes(admin2.log, shared.subscription).length === 1, { what: 'the other socket' });
  assert.deepEqual(changes(admin2.log, shared.subscription), [['added', unheard]]);

  const again = await admin1.socket.emitWithAck('unsubscribe', { subscription: general.subscription });
  assertRefused(again, 'no subscription');
});

test('bad requests get {success: false, message}; the socket keeps working', QUICK, async (t) => {
  await makeCollection('bad');
  const admin1 = await connected(t, admin.token);
  const subscribes = [
    [null, 'subscribe takes an object'],
    ['bad', 'subscribe takes an object'],
    [[], 'subscribe takes an object'],
    [{}, 'collection must be'],
    [{ collection: 5 }, 'collection must be'],
    [{ collection: 'nope' }, 'does not exist'],
    [{ collection: 'bad', page: 2 }, "not 'page'"],
    [{ collection: 'bad', filter: 'text' }, 'filter must be an object'],
    [{ collection: 'bad', filter: { nope: 1 } }, 'unknown field'],
    [{ collection: 'bad', filter: { rank: { gt: 'x' } } }, 'expected'],
    [{ collection: 'bad', filter: { rank: { zz: 1 } } }, 'unknown operator'],
    [{ collection: 'bad', fields: ['nope'] }, "no field 'nope'"],
    [{ collection: 'bad', fields: [1] }, 'list of field names'],
    [{ collection: 'bad', sort: { rank: 'up' } }, "'asc' or 'desc'"],
    [{ collection: 'bad', limit: 0 }, 'limit must be'],
    [{ collection: 'bad', limit: 1001 }, 'limit must be'],
    [{ collection: 'bad', limit: '10' }, 'limit must be'],
    [{ collection: 'notifications' }, 'no realtime events'],
  ];
  for (const [request, words] of subscribes) {
    assertRefused(await admin1.socket.emitWithAck('subscribe', request), words);
  }
  assertRefused(await admin1.socket.emitWithAck('subscribe'), 'subscribe takes an object'); // no argument at all
  for (const request of [null, 5, 'nope', {}, { subscription: 5 }, { subscription: 'nope' }]) {
    assertRefused(await admin1.socket.emitWithAck('unsubscribe', request), 'unsubscribe takes|no subscription');
  }
  admin1.socket.emit('subscribe', { collection: 'nope' }); // no ack asked for
  admin1.socket.emit('subscribe', { collection: 'bad', limit: -1 });

  // The same socket, never disconnected, still subscribes and hears changes.
  const { subscription } = await subscribe(admin1, { collection: 'bad' });
  const item = await items('bad').create({ text: 'still works' });
  await eventually(() => changes(admin1.log, subscription).length === 1, { what: 'subscription.added' });
  assert.deepEqual(changes(admin1.log, subscription), [['added', item]]);
  assert.deepEqual(
    admin1.happened.map((h) => h.event),
    ['connect'],
  );
});

test('a socket holds at most SOCKET_MAX_SUBSCRIPTIONS (100) subscriptions', QUICK, async (t) => {
  await makeCollection('many');
  const admin1 = await connected(t, admin.token);
  const ask = (rank) => admin1.socket.emitWithAck('subscribe', { collection: 'many', filter: { rank: { eq: rank } } });
  const answers = await Promise.all(Array.from({ length: 100 }, (_, rank) => ask(rank)));
  assert.ok(answers.every((answer) => answer.success));
  assert.equal(new Set(answers.map((answer) => answer.subscription)).size, 100);
  assert.deepEqual(await ask(100), { success: false, message: 'a socket may hold at most 100 subscriptions' });
  assert.equal((await ask(7)).success, true, 'the same one again is no new subscription');
  await admin1.socket.emitWithAck('unsubscribe', { subscription: answers[0].subscription });
  assert.equal((await ask(100)).success, true, 'room for one more');
});

test('the server ends a subscription: read permission lost, schema changed', QUICK, async (t) => {
  const ending = await makeCollection('ending');
  const rule = await api.allow(admin.token, 'user', 'ending', 'read');
  const ann1 = await connected(t, ann.token);
  const admin1 = await connected(t, admin.token);
  const { subscription } = await subscribe(ann1, { collection: 'ending' });
  const shown = follow(admin1, { collection: 'ending' });
  await eventually(() => shown.renders === 1, { what: "the administrator's snapshot" });
  const endings = (c) => c.log.filter((e) => e.event === 'subscription.ended').map((e) => e.payload);

  await api.request('DELETE', `/permissions/${rule.data.id}`, { token: admin.token });
  await eventually(() => endings(ann1).length === 1, { what: "ann's subscription.ended" });
  const [ended] = endings(ann1);
  assert.deepEqual(Object.keys(ended).sort(), ['collection', 'reason', 'subscription', 'timestamp']);
  assert.equal(ended.subscription, subscription);
  assert.equal(ended.collection, 'ending');
  assert.match(ended.reason, /may not read/);
  assert.match(ended.timestamp, ISO_UTC);
  assertRefused(await ann1.socket.emitWithAck('subscribe', { collection: 'ending' }), 'may not read');
  // The administrator's identical subscription (the same id) goes on.
  const kept = await ending.create({ text: 'kept' });
  await eventually(() => shown.items.has(kept.id), { what: 'the administrator still in sync' });
  assert.deepEqual(endings(admin1), []);

  const fields = { mood: { type: 'String' } };
  await api.request('PATCH', '/schemas/ending', { token: admin.token, json: { fields } });
  await eventually(() => endings(admin1).length === 1, { what: "the administrator's subscription.ended" });
  assert.match(endings(admin1)[0].reason, /schema of ending changed/);
  // Subscribing again gets the new shape.
  const again = await subscribe(admin1, { collection: 'ending' });
  assert.deepEqual(
    again.items.map((row) => [row.text, row.mood]),
    [['kept', null]],
  );
  const item = await ending.create({ text: 'new shape', mood: 'fine' });
  await eventually(() => changes(admin1.log, again.subscription).length === 2, { what: 'subscription.added' });
  assert.deepEqual(changes(admin1.log, again.subscription), [
    ['added', kept],
    ['added', item],
  ]);
});

// -- reconnecting ------------------------------------------------------------------------

/**
 * Ann, reading all of `collection`, through a proxy that can cut her connection,
 * showing the general channel with `liveQuery`; answers once the snapshot is shown.
 */
async function annThroughAProxy(t, collection) {
  const proxy = await TcpProxy.start(server.port);
  t.after(() => proxy.close());
  const c = await connected(t, ann.token, proxy.url);
  const shown = follow(c, { collection, filter: GENERAL, fields: ['text', 'channel'] });
  await eventually(() => shown.renders === 1, { what: 'the snapshot' });
  return { ...c, proxy, shown };
}

/** Cut the connection and keep the client away until `comeBack`. */
async function cut(c) {
  c.gate.close();
  c.proxy.loseAll();
  await eventually(() => !c.socket.connected, { what: 'the disconnect' });
}

/** Let the client in again; answers its next `connected` payload. */
async function comeBack(c) {
  const count = c.log.filter((e) => e.event === 'connected').length + 1;
  c.gate.open();
  return hello(c, count);
}

/** The `subscribe` requests the client has sent. */
const subscribes = (c) => c.sent.filter((e) => e.event === 'subscribe').map((e) => e.payload);

async function assertShownAsRestLists(shown, collection) {
  const rest = await items(collection).list({ filter: GENERAL, fields: 'text,channel', limit: -1 }, ann.token);
  assert.deepEqual(shown.items, byId(rest));
}

test('a recovered socket gets what it missed as subscription events, in order, once', QUICK, async (t) => {
  const recovered = await makeCollection('recovered', [['user', {}]]);
  const stays = await recovered.create({ text: 'stays', channel: 'general' });
  const leaves = await recovered.create({ text: 'leaves', channel: 'general' });
  const ann1 = await annThroughAProxy(t, 'recovered');
  await assertShownAsRestLists(ann1.shown, 'recovered');
  const live = await recovered.create({ text: 'live', channel: 'general' });
  await eventually(() => ann1.shown.items.has(live.id), { what: 'a live change' });
  const { subscription } = ann1.log.find((e) => e.event === 'subscription.added').payload;
  const { id } = ann1.socket;

  await cut(ann1);
  const seen = ann1.log.length;
  await recovered.update(stays.id, { text: 'changed while away' });
  await recovered.update(leaves.id, { channel: 'random' });
  const added = await recovered.create({ text: 'new while away', channel: 'general' });
  await recovered.create({ text: 'elsewhere', channel: 'random' });

  // 4 item events (ann's socket is in the collection's room) and 3 subscription events.
  assert.deepEqual(await comeBack(ann1), { userId: ann.user.id, role: 'user', recovered: true, missed: 7 });
  assert.equal(ann1.socket.recovered, true);
  assert.equal(ann1.socket.id, id);
  await eventually(() => ann1.shown.items.has(added.id), { what: 'the missed changes' });
  await assertShownAsRestLists(ann1.shown, 'recovered');

  // The subscription goes on, and was not asked for again.
  const later = await recovered.create({ text: 'after', channel: 'general' });
  await eventually(() => ann1.shown.items.has(later.id), { what: 'a change after the recovery' });
  await assertShownAsRestLists(ann1.shown, 'recovered');
  assert.deepEqual(changes(ann1.log.slice(seen), subscription), [
    ['changed', { id: stays.id, text: 'changed while away', channel: 'general' }],
    ['removed', { id: leaves.id }],
    ['added', { id: added.id, text: 'new while away', channel: 'general' }],
    ['added', { id: later.id, text: 'after', channel: 'general' }],
  ]);
  assert.equal(subscribes(ann1).length, 1);
});

test('a reconnect that is a new session subscribes again and is in sync', QUICK, async (t) => {
  const renewed = await makeCollection('renewed', [['user', {}]]);
  const stays = await renewed.create({ text: 'stays', channel: 'general' });
  const leaves = await renewed.create({ text: 'leaves', channel: 'general' });
  const ann1 = await annThroughAProxy(t, 'renewed');
  const live = await renewed.create({ text: 'live', channel: 'general' });
  await eventually(() => ann1.shown.items.has(live.id), { what: 'a live change' });
  const { subscription } = ann1.log.find((e) => e.event === 'subscription.added').payload;
  const { id } = ann1.socket;

  await cut(ann1);
  const seen = ann1.log.length;
  await renewed.update(stays.id, { text: 'changed while away' });
  await renewed.update(leaves.id, { channel: 'random' });
  // More than SOCKET_RECOVERY_MAX_EVENTS to replay: the session is not recovered.
  const many = Array.from({ length: RECOVERY_MAX_EVENTS }, (_, i) => ({ text: `new ${i}`, channel: 'general' }));
  await renewed.createMany(many);

  assert.deepEqual(await comeBack(ann1), { userId: ann.user.id, role: 'user', recovered: false });
  assert.equal(ann1.socket.recovered, false);
  assert.notEqual(ann1.socket.id, id);
  // liveQuery subscribed again, and shows the new snapshot.
  await eventually(() => ann1.shown.items.size === 2 + RECOVERY_MAX_EVENTS, { what: 'the new snapshot' });
  await assertShownAsRestLists(ann1.shown, 'renewed');
  assert.equal(ann1.shown.items.get(stays.id).text, 'changed while away');
  const [first, second] = subscribes(ann1);
  assert.deepEqual(second, first);
  assert.equal(subscribes(ann1).length, 2);

  // Nothing missed was replayed; the same query is the same subscription, following changes.
  const later = await renewed.create({ text: 'after', channel: 'general' });
  await eventually(() => ann1.shown.items.has(later.id), { what: 'a change after the reconnect' });
  await assertShownAsRestLists(ann1.shown, 'renewed');
  assert.deepEqual(changes(ann1.log.slice(seen), subscription), [
    ['added', { id: later.id, text: 'after', channel: 'general' }],
  ]);
});
