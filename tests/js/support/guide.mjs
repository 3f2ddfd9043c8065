// The BAASIX guide's "Client Integration" code, as an app would write it, with
// `console.log` replaced by a list of what happened that the tests can read.

import { io } from 'socket.io-client';

/**
 * Connect exactly as the guide shows: path '/realtime', websocket then polling,
 * autoConnect, the JWT in `auth.token`, and the three connection handlers.
 * `overrides` changes one option for a test (e.g. polling only); nothing else.
 */
export function connectAsInTheGuide(url, token, overrides = {}) {
  const happened = [];

  const options = {
    path: '/realtime',
    transports: ['websocket', 'polling'],
    autoConnect: true,
    auth: { token },
  };

  const socket = io(url, withOverrides(options, overrides));

  socket.on('connect', () => {
    happened.push({ event: 'connect', id: socket.id });
  });

  socket.on('disconnect', (reason) => {
    happened.push({ event: 'disconnect', reason });
  });

  socket.on('connect_error', (error) => {
    happened.push({ event: 'connect_error', message: error.message });
  });

  return { socket, happened };
}

// An override of `undefined` removes that option (socket.io-client's default applies).
function withOverrides(options, overrides) {
  const merged = { ...options, ...overrides };
  for (const [key, value] of Object.entries(merged)) {
    if (value === undefined) delete merged[key];
  }
  return merged;
}

/** Every payload of `event` this socket receives from now on, in order. */
export function record(socket, event) {
  const payloads = [];
  socket.on(event, (data) => payloads.push(data));
  return payloads;
}
