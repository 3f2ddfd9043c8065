// A real `livebase serve` process for the conformance suite, and a small REST client.
//
// Each suite starts its own server on a free 127.0.0.1 port, in a temporary
// directory holding its SQLite database, uploads and secret, and kills it by
// PID when done (also when a test fails or the runner is interrupted).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'admin-password-1';
const SECRET_KEY = 'js-conformance-secret-key-0123456789abcdefghijkl'; // 48 characters
const STARTUP_TIMEOUT_MS = 30_000;

const running = new Set();

function killAll() {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

// The test runner kills a test file's process on timeout or Ctrl-C: take the servers along.
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

export async function freePort() {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  probe.close();
  await once(probe, 'close');
  return port;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `check()` returns a truthy value (and return it), or fail after `timeout` ms. */
export async function eventually(check, { timeout = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

export class Livebase {
  constructor(dir, port, settings = {}) {
    this.dir = dir;
    this.port = port;
    this.settings = settings;
    this.url = `http://127.0.0.1:${port}`;
    this.logPath = join(dir, 'server.log');
    this.child = null;
  }

  /** A new server in a new temporary directory, started and healthy; `settings` adds variables. */
  static async start(settings = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'livebase-js-'));
    const server = new Livebase(dir, await freePort(), settings);
    await server.start();
    return server;
  }

  env() {
    // PYTHONPATH passes through so that the suite can run against another source tree.
    const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'PYTHONPATH'];
    const base = Object.fromEntries(keep.filter((k) => k in process.env).map((k) => [k, process.env[k]]));
    return {
      ...base,
      HOST: '127.0.0.1',
      PORT: String(this.port),
      DATABASE_URL: `sqlite:///${join(this.dir, 'db.sqlite')}`,
      DATA_DIR: join(this.dir, 'data'),
      STORAGE_PATH: join(this.dir, 'uploads'),
      EXTENSIONS_PATH: join(REPO, 'examples', 'extensions'),
      SECRET_KEY,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      RATE_LIMIT_AUTH: '1000000',
      LOG_LEVEL: 'warning',
      ...this.settings,
    };
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Start `livebase serve` (again: same port, same database) and wait for GET /health. */
  async start() {
    if (this.child) throw new Error('livebase is already running');
    const out = openSync(this.logPath, 'a');
    const child = spawn(join(REPO, '.venv', 'bin', 'livebase'), ['serve'], {
      cwd: this.dir,
      env: this.env(),
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    this.child = child;
    running.add(child);
    child.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
      child.on('error', (error) => {
        running.delete(child);
        resolve({ error });
      });
    });
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      const exited = await Promise.race([child.exited, sleep(100).then(() => null)]);
      if (exited) {
        this.child = null;
        throw new Error(`livebase exited while starting (${JSON.stringify(exited)}):\n${this.log()}`);
      }
      try {
        const response = await fetch(`${this.url}/health`);
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop('SIGKILL');
        throw new Error(`livebase did not become healthy in ${STARTUP_TIMEOUT_MS} ms:\n${this.log()}`);
      }
    }
  }

  /**
   * Stop the process by its PID; SIGKILL if it is still there after `timeout` ms.
   * Answers how it ended: `{code, signal, killed}` (`killed`: the grace period ran out).
   *
   * The grace period is short on purpose: livebase's graceful shutdown waits for
   * the pending request of every connected long-polling client, which
   * python-engineio answers only at the next ping (SOCKET_PING_INTERVAL, 25 s).
   */
  async stop(signal = 'SIGTERM', timeout = 3000) {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    let killed = false;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, signal);
      const stopped = await Promise.race([child.exited, sleep(timeout).then(() => null)]);
      if (!stopped && signal !== 'SIGKILL') {
        process.kill(child.pid, 'SIGKILL');
        killed = true;
      }
    }
    return { ...(await child.exited), killed };
  }

  /** Stop the server and remove its directory. */
  async close() {
    await this.stop('SIGTERM', 1000);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The REST API, with Node's global fetch (and FormData/Blob for uploads). */
export class Api {
  constructor(url) {
    this.url = url;
  }

  async request(method, path, { token, json, form, expect } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // fetch sets the multipart boundary itself
    }
    const response = await fetch(`${this.url}${path}`, { method, headers, body });
    const text = await response.text();
    const wanted = expect ?? (method === 'POST' ? [200, 201] : [200]);
    if (![wanted].flat().includes(response.status)) {
      throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    }
    return text ? JSON.parse(text) : null;
  }

  /** POST /auth/login → {token, user, role, expiresAt} */
  login(email, password) {
    return this.request('POST', '/auth/login', { json: { email, password } });
  }

  /** POST /auth/register → {token, user, role, expiresAt}; `profile`: {firstName, lastName}. */
  register(email, password = 'password-123', profile = {}) {
    return this.request('POST', '/auth/register', { json: { email, password, ...profile }, expect: 201 });
  }

  createCollection(adminToken, name, fields) {
    const json = { collectionName: name, schema: { name, timestamps: true, fields } };
    return this.request('POST', '/schemas', { token: adminToken, json, expect: 201 });
  }

  allow(adminToken, role, collection, action, rule = {}) {
    const json = { role, collection, action, fields: ['*'], ...rule };
    return this.request('POST', '/permissions', { token: adminToken, json, expect: 201 });
  }
}
