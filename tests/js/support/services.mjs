// The PostgreSQL and Redis that the cluster tests need, as the Python suite finds
// them (LIVEBASE_TEST_PG, LIVEBASE_TEST_REDIS; tests/conftest.py). They are
// required: when one is missing, these helpers throw and the test fails.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export const PG_ADMIN_DSN = process.env.LIVEBASE_TEST_PG ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.LIVEBASE_TEST_REDIS ?? 'redis://127.0.0.1:6379/3';

export const uniqueName = (prefix) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;

function psql(sql) {
  const run = spawnSync('psql', [PG_ADMIN_DSN, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (run.status !== 0) {
    const why = run.error?.message ?? run.stderr.trim();
    throw new Error(`PostgreSQL is required for this test (${PG_ADMIN_DSN}): ${why}`);
  }
}

/** A new empty database; answers its URL. */
export function createPgDatabase(name) {
  psql(`CREATE DATABASE "${name}"`);
  return `${PG_ADMIN_DSN.slice(0, PG_ADMIN_DSN.lastIndexOf('/'))}/${name}`;
}

export function dropPgDatabase(name) {
  psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/**
 * Send `commands` (arrays of strings) to REDIS_URL's database and answer their
 * replies (simple strings, integers and bulk strings only). Throws on an error reply.
 */
export function redis(...commands) {
  const url = new URL(REDIS_URL);
  const database = url.pathname.slice(1) || '0';
  const all = [['SELECT', database], ...commands];
  const encoded = all
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    .join('');
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      socket.destroy();
      reject(new Error(`Redis is required for this test (${REDIS_URL}): ${why}`));
    };
    const socket = net.connect(Number(url.port || 6379), url.hostname, () => socket.write(encoded));
    socket.setTimeout(5000, () => fail('no answer in 5 s'));
    socket.on('error', (error) => fail(error.message));
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const replies = parseReplies(buffer);
      if (replies.length < all.length) return;
      socket.end();
      const error = replies.find((reply) => reply instanceof Error);
      if (error) fail(error.message);
      else resolve(replies.slice(1));
    });
  });
}

function parseReplies(text) {
  const replies = [];
  let at = 0;
  for (;;) {
    const lineEnd = text.indexOf('\r\n', at);
    if (lineEnd < 0) return replies;
    const kind = text[at];
    const line = text.slice(at + 1, lineEnd);
    if (kind === '$') {
      const length = Number(line);
      if (length < 0) {
        replies.push(null);
        at = lineEnd + 2;
        continue;
      }
      if (text.length < lineEnd + 2 + length + 2) return replies;
      replies.push(text.slice(lineEnd + 2, lineEnd + 2 + length));
      at = lineEnd + 2 + length + 2;
      continue;
    }
    replies.push(kind === ':' ? Number(line) : kind === '-' ? new Error(line) : line);
    at = lineEnd + 2;
  }
}

/** Delete the keys under livebase's SOCKET_REDIS_KEY `prefix`. */
export function deleteRedisKeys(prefix) {
  const script =
    "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n";
  return redis(['EVAL', script, '0', `${prefix}:*`]);
}
