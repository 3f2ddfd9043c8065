// Recovery (SPEC §11; src/livebase/realtime/recovery.py) with the official
// socket.io-client, which speaks the protocol by itself: the CONNECT
// reply's `pid`, the offset every event ends with (kept as `socket._lastOffset`),
// and both sent back on reconnect; `socket.recovered` says whether the server
// gave the session back. The Python side is tests/realtime/test_recovery.py.
//
// "Away": the client loses its transport (`socket.io.engine.close()`, a killed
// process, a proxy that cuts it) and its Manager reconnects by itself; with its
// gate closed, the reconnected client holds its CONNECT packet (its `auth`
// function waits) until the test has written what it should miss.
//
// Negative checks end with a sentinel: an item written to `messages`, which every
// client here reads. Events reach a socket in offset order, replayed ones
// before live ones, so once the sentinel is in, whatever was to come has come.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

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

const QUICK = { timeout: 20_000 }; // each takes well under a second, or a restart
const CLUSTER = { timeout: 30_000 };
const PID_LENGTH = 24; // 144 random bits, base64url
const DECIMAL = /^\d+$/;

// -- helpers ------------------------------------------------------------------------

/**
 * The guide's client, reconnecting quickly, behind a gate, with a log of every
 * event it receives: `{event, payload, args}` (`args`: all its arguments, the
 * offset last). `auth` adds to the token in the CONNECT packet. Disconnected when
 * test `t` ends.
 */
function client(t, url, token, auth = {}) {
  const gate = new Gate();
  const { socket, happened } = connectAsInTheGuide(url, token, {
    auth: (send) => gate.passed().then(() => send({ token, ...auth })),
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  const log = [];
  socket.onAny((event, ...args) => log.push({ event, payload: args[0], args }));
  t.after(() => socket.disconnect());
  return { socket, happened, gate, log };
}

const offsetOf = (entry) => entry.args.at(-1);

/** The texts of the `item.created` events of `collection` in the log, in order. */
const texts = (log, collection = 'notes') =>
  log
    .filter((e) => e.event === 'item.created' && e.payload.collection === collection)
    .map((e) => e.payload.item.text);

const hellos = (log) => log.filter((e) => e.event === 'connected');

/** The `count`-th `connected` payload (1-based), waiting for it. */
async function hello(c, count = 1) {
  await eventually(() => hellos(c.log).length >= count, { what: `connected #${count}` });
  assert.equal(hellos(c.log).length, count, 'more `connected` events than connections');
  return hellos(c.log)[count - 1].payload;
}

/** Lose the transport; with `stayAway`, the client asks for its session only at `comeBack`. */
async function drop(c, { stayAway = false } = {}) {
  const before = c.happened.filter((h) => h.event === 'disconnect').length;
  if (stayAway) c.gate.close();
  c.socket.io.engine.close();
  await eventually(() => c.happened.filter((h) => h.event === 'disconnect').length > before, { what: 'disconnect' });
}

/** Let the client in again; answers its next `connected` payload. */
async function comeBack(c) {
  const count = hellos(c.log).length + 1;
  c.gate.open();
  await eventually(() => c.socket.connected, { timeout: 10_000, what: 'the reconnection' });
  return hello(c, count);
}

let marks = 0;

/**
 * A livebase process's REST API as its administrator, with `ann` (role `user`) who
 * may read `notes` and `messages`: `write` creates an item, `sentinel` writes to
 * `messages` and waits until every client given has it.
 */
class Site {
  constructor(url, admin, ann) {
    this.url = url;
    this.api = new Api(url);
    this.admin = admin;
    this.ann = ann;
  }

  /** Log in, make ann, the collections and the rules (once per database). */
  static async prepare(url) {
    const api = new Api(url);
    const admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    const ann = await api.register('ann@example.com');
    for (const name of ['notes', 'messages']) {
      await api.createCollection(admin.token, name, { text: { type: 'String' } });
      await api.allow(admin.token, 'user', name, 'read');
    }
    return new Site(url, admin, ann);
  }

  /** The same deployment through another process. */
  on(url) {
    return new Site(url, this.admin, this.ann);
  }

  async write(collection, text) {
    const json = { text };
    const created = await this.api.request('POST', `/items/${collection}`, { token: this.admin.token, json });
    return created.data;
  }

  async sentinel(...clients) {
    const text = `sentinel ${++marks}`;
    await this.write('messages', text);
    for (const c of clients) {
      await eventually(() => texts(c.log, 'messages').includes(text), { what: `"${text}"` });
    }
  }

  async connections() {
    const stats = await this.api.request('GET', '/stats/realtime', { token: this.admin.token });
    return stats.data.connections;
  }
}

/** Offsets are decimal strings; each change event's is greater than the one before. */
function assertIncreasingOffsets(log) {
  const changes = log.filter((e) => e.event === 'item.created').map(offsetOf);
  for (const offset of changes) assert.match(offset, DECIMAL);
  for (let i = 1; i < changes.length; i++) {
    assert.ok(BigInt(changes[i]) > BigInt(changes[i - 1]), `offsets in order: ${changes}`);
  }
}

// -- one process, SQLite --------------------------------------------------------------

let server;
let site;
let short; // SOCKET_RECOVERY_WINDOW=1
let shortSite;

before(async () => {
  // Started together: most of a start is Python's imports.
  // No presence grace: a user who really goes offline is announced at once.
  const settings = { SOCKET_PRESENCE_GRACE: '0' };
  [server, short] = await Promise.all([
    Livebase.start(settings),
    Livebase.start({ ...settings, SOCKET_RECOVERY_WINDOW: '1' }),
  ]);
  [site, shortSite] = await Promise.all([Site.prepare(server.url), Site.prepare(short.url)]);
});

after(async () => {
  await Promise.all([server?.close(), short?.close()]);
});

test('missed events come back in order, once, with the same socket.id, then live ones', QUICK, async (t) => {
  const ann = client(t, server.url, site.ann.token);
  assert.deepEqual(await hello(ann), { userId: site.ann.user.id, role: 'user', recovered: false });
  const [first] = ann.log;
  assert.equal(first.args.length, 2, '`connected` ends with an offset');
  assert.match(offsetOf(first), DECIMAL);
  const { id, _pid: pid } = ann.socket;
  assert.equal(typeof pid, 'string');
  assert.equal(pid.length, PID_LENGTH);
  assert.equal(ann.socket.recovered, false);

  await site.write('notes', 'before');
  await eventually(() => texts(ann.log).length === 1, { what: '"before"' });
  const lastSeen = offsetOf(ann.log.at(-1));
  assert.equal(ann.socket._lastOffset, lastSeen);

  await drop(ann, { stayAway: true });
  // socket.io-client's reason when the engine is closed on the client's side.
  assert.deepEqual(ann.happened.at(-1), { event: 'disconnect', reason: 'forced close' });
  const missed = ['missed 0', 'missed 1', 'missed 2', 'missed 3', 'missed 4'];
  for (const text of missed) await site.write('notes', text);
  const seenBefore = ann.log.length;

  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 5 });
  assert.equal(ann.socket.recovered, true);
  assert.equal(ann.socket.id, id);
  assert.equal(ann.socket._pid, pid);
  await eventually(() => texts(ann.log).length === 6, { what: 'the missed events' });

  await site.write('notes', 'after');
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log), ['before', ...missed, 'after']);
  // Since the reconnect: `connected` (with the offset the client sent back), the
  // replay, then the live events; nothing else, nothing twice.
  const since = ann.log.slice(seenBefore);
  assert.deepEqual(
    since.map((e) => e.event),
    ['connected', ...missed.map(() => 'item.created'), 'item.created', 'item.created'],
  );
  assert.equal(offsetOf(since[0]), lastSeen);
  assertIncreasingOffsets(ann.log);
  assert.ok(BigInt(offsetOf(since[1])) > BigInt(lastSeen));
  assert.equal(ann.socket._lastOffset, offsetOf(ann.log.at(-1)));
  assert.deepEqual(
    ann.happened.map((h) => h.event),
    ['connect', 'disconnect', 'connect'],
  );
});

test('recovers with nothing received but `connected`, twice in a row with no event between', QUICK, async (t) => {
  const ann = client(t, server.url, site.ann.token);
  await hello(ann);
  const { id, _pid: pid } = ann.socket;
  assert.deepEqual(ann.log.map((e) => e.event), ['connected']);
  const offset = offsetOf(ann.log[0]);

  await drop(ann);
  assert.deepEqual(await hello(ann, 2), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 0 });
  assert.equal(ann.socket.recovered, true);
  await drop(ann);
  assert.deepEqual(await hello(ann, 3), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 0 });
  assert.equal(ann.socket.recovered, true);
  assert.equal(ann.socket.id, id);
  assert.equal(ann.socket._pid, pid);
  assert.deepEqual(ann.log.map((e) => e.event), ['connected', 'connected', 'connected']);
  assert.deepEqual(ann.log.map(offsetOf), [offset, offset, offset]);

  await site.write('notes', 'still live');
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log), ['still live']);
});

test('an event it may no longer read when it comes back is not replayed', QUICK, async (t) => {
  await site.api.createCollection(site.admin.token, 'secrets', { text: { type: 'String' } });
  const rule = await site.api.allow(site.admin.token, 'user', 'secrets', 'read');
  const ann = client(t, server.url, site.ann.token);
  await hello(ann);
  await site.write('secrets', 'readable');
  await eventually(() => texts(ann.log, 'secrets').length === 1, { what: 'the first secret' });

  await drop(ann, { stayAway: true });
  await site.write('secrets', 'while away');
  await site.api.request('DELETE', `/permissions/${rule.data.id}`, { token: site.admin.token });
  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 0 });
  await site.write('secrets', 'after');
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log, 'secrets'), ['readable']);
});

test("another user's pid and offset get a new session; the session stays its owner's", QUICK, async (t) => {
  const ann = client(t, server.url, site.ann.token);
  await hello(ann);
  await site.write('notes', 'seen');
  await eventually(() => texts(ann.log).length === 1, { what: '"seen"' });
  const { id, _pid: pid, _lastOffset: offset } = ann.socket;
  await drop(ann, { stayAway: true });
  await site.write('notes', 'missed');

  // socket.io-client sends `auth` as given when it has no pid of its own.
  const thief = client(t, server.url, site.admin.token, { pid, offset });
  assert.deepEqual(await hello(thief), { userId: site.admin.user.id, role: 'administrator', recovered: false });
  assert.equal(thief.socket.recovered, false);
  assert.notEqual(thief.socket.id, id);
  assert.notEqual(thief.socket._pid, pid);
  await site.sentinel(thief);
  assert.deepEqual(texts(thief.log), [], "nothing of ann's session is replayed to it");

  // Missed: the note and the thief's sentinel (ann reads `messages` too).
  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 2 });
  assert.equal(ann.socket.recovered, true);
  assert.equal(ann.socket.id, id);
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log), ['seen', 'missed']);
  assert.deepEqual(texts(ann.log, 'messages'), [`sentinel ${marks - 1}`, `sentinel ${marks}`]);
});

test('a reconnect before the server noticed the drop takes the session over quietly', QUICK, async (t) => {
  const proxy = await TcpProxy.start(server.port);
  t.after(() => proxy.close());
  const watcher = client(t, server.url, site.admin.token);
  await hello(watcher);
  assert.deepEqual(await watcher.socket.emitWithAck('join', 'presence'), { success: true, room: 'presence' });
  const ann = client(t, proxy.url, site.ann.token);
  await hello(ann);
  const { id } = ann.socket;
  const presence = () =>
    watcher.log.filter((e) => e.event.startsWith('user.')).map((e) => [e.event, e.payload.socketId]);
  await eventually(() => presence().length === 1, { what: 'user.connected' });
  assert.deepEqual(presence(), [['user.connected', id]]);

  // The network dies: the client notices, the server does not (its side stays open).
  ann.gate.close();
  proxy.loseAll();
  await eventually(() => !ann.socket.connected, { what: 'disconnect' });
  assert.deepEqual(ann.happened.at(-1), { event: 'disconnect', reason: 'transport close' });
  await site.write('notes', 'sent into the dead connection');
  assert.equal(await site.connections(), 2, 'the server still counts the old connection');

  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 1 });
  assert.equal(ann.socket.recovered, true);
  assert.equal(ann.socket.id, id);
  await eventually(() => proxy.pairs.size === 1, { what: 'the server closing the old connection' });
  assert.equal(await site.connections(), 2);
  await site.sentinel(ann, watcher);
  assert.deepEqual(texts(ann.log), ['sent into the dead connection']);
  assert.deepEqual(presence(), [['user.connected', id]], 'no user.disconnected, no second user.connected');
});

test('a client that opts out (auth.recovery: false) gets no offsets and never recovers', QUICK, async (t) => {
  const ann = client(t, server.url, site.ann.token, { recovery: false });
  assert.deepEqual(await hello(ann), { userId: site.ann.user.id, role: 'user' });
  assert.equal(ann.socket._pid, undefined);
  const id = ann.socket.id;
  await site.write('notes', 'live');
  await eventually(() => texts(ann.log).length === 1, { what: '"live"' });

  await drop(ann, { stayAway: true });
  await site.write('notes', 'while away');
  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user' });
  // socket.io-client sets `recovered = pid && this._pid === pid`: with no pid, undefined.
  assert.equal(ann.socket.recovered, undefined);
  assert.notEqual(ann.socket.id, id);
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log), ['live']);
  assert.deepEqual(
    ann.log.map((e) => [e.event, e.args.length]),
    [
      ['connected', 1],
      ['item.created', 1],
      ['connected', 1],
      ['item.created', 1],
    ],
  );
});

test('a SQLite server restarted while the client is away: recovered, with what was written', QUICK, async (t) => {
  const ann = client(t, server.url, site.ann.token);
  await hello(ann);
  await site.write('notes', 'before the restart');
  await eventually(() => texts(ann.log).length === 1, { what: 'the first note' });
  const id = ann.socket.id;

  ann.gate.close();
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.killed, false, 'livebase did not stop within 3 s of SIGTERM');
  await eventually(() => !ann.socket.connected, { what: 'disconnect' });
  await server.start(); // same port and database; the client's Manager reconnects by itself
  const missed = ['restarted 0', 'restarted 1', 'restarted 2'];
  for (const text of missed) await site.write('notes', text);

  assert.deepEqual(await comeBack(ann), { userId: site.ann.user.id, role: 'user', recovered: true, missed: 3 });
  assert.equal(ann.socket.recovered, true);
  assert.equal(ann.socket.id, id);
  await site.write('notes', 'live');
  await site.sentinel(ann);
  assert.deepEqual(texts(ann.log), ['before the restart', ...missed, 'live']);
  assertIncreasingOffsets(ann.log);
});

test('SOCKET_RECOVERY_WINDOW=1, away for 2 s: a new session, nothing replayed', QUICK, async (t) => {
  const admin = client(t, short.url, shortSite.admin.token);
  await hello(admin);
  const { id, _pid: pid } = admin.socket;
  await drop(admin, { stayAway: true });
  await shortSite.write('notes', 'while away');
  await sleep(2000); // the window itself is what this test is about

  const again = await comeBack(admin);
  assert.deepEqual(again, { userId: shortSite.admin.user.id, role: 'administrator', recovered: false });
  assert.equal(admin.socket.recovered, false);
  assert.notEqual(admin.socket.id, id);
  assert.notEqual(admin.socket._pid, pid);
  await shortSite.sentinel(admin);
  assert.deepEqual(texts(admin.log), []);
});

// -- two processes: PostgreSQL and Redis, behind a proxy -----------------------------

describe('two processes sharing PostgreSQL and Redis, behind one proxy', () => {
  const database = uniqueName('livebase_js');
  const redisKey = uniqueName('lbjs');
  let nodes = [];
  let proxy;
  let siteA;
  let siteB;
  let databaseUrl;

  before(async () => {
    // Both required: an error here fails every test of this group.
    assert.deepEqual(await redis(['PING']), ['PONG']);
    databaseUrl = createPgDatabase(database);
    const settings = {
      DATABASE_URL: databaseUrl,
      CACHE_REDIS_URL: REDIS_URL,
      SOCKET_REDIS_KEY: redisKey,
      DEMO_ENABLED: 'false',
    };
    // Together, as a deploy starts them (migrations and the administrator are made under locks).
    nodes = await Promise.all([Livebase.start(settings), Livebase.start(settings)]);
    siteA = await Site.prepare(nodes[0].url);
    siteB = siteA.on(nodes[1].url);
    proxy = await TcpProxy.start(nodes[0].port);
  });

  /**
   * Redis holds the session of `pid` (`<SOCKET_REDIS_KEY>:session:<sha256(pid)>`,
   * src/livebase/realtime/stored_sessions.py) as soon as the client knows its pid:
   * livebase stores it before the CONNECT reply, so a process killed right after
   * leaves a session any other process can recover.
   */
  async function sessionStored(pid) {
    const key = `${redisKey}:session:${createHash('sha256').update(pid).digest('hex')}`;
    assert.equal((await redis(['EXISTS', key]))[0], 1, 'the session is in Redis');
  }

  after(async () => {
    await proxy?.close();
    for (const node of nodes) await node.close();
    nodes = [];
    if (databaseUrl) {
      dropPgDatabase(database);
      await deleteRedisKeys(redisKey);
    }
  });

  /** Ann's socket, through the proxy on the first process, with one event received. */
  async function onTheFirstProcess(t) {
    proxy.pointAt(nodes[0].port);
    const ann = client(t, proxy.url, siteA.ann.token);
    await hello(ann);
    assert.equal(proxy.accepted.at(-1).targetPort, nodes[0].port);
    await siteA.write('notes', 'before');
    await eventually(() => texts(ann.log).length === 1, { what: '"before"' });
    await sessionStored(ann.socket._pid);
    return { ann, id: ann.socket.id };
  }

  test('dropped on one process, back through the other: recovered with what it missed', CLUSTER, async (t) => {
    const { ann, id } = await onTheFirstProcess(t);

    proxy.pointAt(nodes[1].port);
    await drop(ann, { stayAway: true });
    await siteA.write('notes', 'missed on A');
    await siteB.write('notes', 'missed on B');

    assert.deepEqual(await comeBack(ann), { userId: siteA.ann.user.id, role: 'user', recovered: true, missed: 2 });
    assert.equal(proxy.accepted.at(-1).targetPort, nodes[1].port);
    assert.equal(await siteB.connections(), 1);
    assert.equal(ann.socket.recovered, true);
    assert.equal(ann.socket.id, id);
    await siteA.write('notes', 'live from A');
    await siteB.sentinel(ann);
    assert.deepEqual(texts(ann.log), ['before', 'missed on A', 'missed on B', 'live from A']);
    assertIncreasingOffsets(ann.log);
  });

  test('its process killed (SIGKILL): recovered on the other with what was written there', CLUSTER, async (t) => {
    const { ann, id } = await onTheFirstProcess(t);

    proxy.pointAt(nodes[1].port);
    ann.gate.close();
    await nodes[0].stop('SIGKILL');
    await eventually(() => !ann.socket.connected, { what: 'disconnect' });
    const missed = ['missed 0', 'missed 1', 'missed 2'];
    for (const text of missed) await siteB.write('notes', text);

    assert.deepEqual(await comeBack(ann), { userId: siteA.ann.user.id, role: 'user', recovered: true, missed: 3 });
    assert.equal(proxy.accepted.at(-1).targetPort, nodes[1].port);
    assert.equal(ann.socket.recovered, true);
    assert.equal(ann.socket.id, id);
    await siteB.write('notes', 'live');
    await siteB.sentinel(ann);
    assert.deepEqual(texts(ann.log), ['before', ...missed, 'live']);
    assertIncreasingOffsets(ann.log);
  });
});
