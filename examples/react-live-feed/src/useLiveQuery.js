// A live query (livebase's `subscribe`) as React state: the snapshot, then every
// change to it, with nothing lost or doubled in between.

import { useEffect, useState } from 'react';

const DEFAULT_LIMIT = 100; // the server's, when the query names none

/**
 * Follow `query` ({collection, filter?, fields?, sort?, limit?}, as on GET /items)
 * over `socket` (null while there is none). Answers:
 *
 * - `items`: the query's result in its `sort` order, at most `limit` of them;
 * - `error`: the server's message when it refused the subscription;
 * - `ended`: the reason the server gave when it ended it (`subscription.ended`);
 * - `restart()`: subscribe again, for a fresh snapshot.
 *
 * It subscribes on every connect that did not recover the session: a recovered
 * socket keeps its subscription and gets what it missed as subscription events.
 */
export function useLiveQuery(socket, query) {
  const [state, setState] = useState({ items: [], error: null, ended: null });
  const [attempt, setAttempt] = useState(0);
  const request = JSON.stringify(query); // a new object with the same query changes nothing

  useEffect(() => {
    if (!socket) return undefined;
    const asked = JSON.parse(request);
    const order = orderOf(asked.sort);
    const limit = asked.limit ?? DEFAULT_LIMIT;
    let id = null; // the subscription's, once the server answered
    let active = true;

    function subscribe() {
      socket.emit('subscribe', asked, (answer) => {
        if (!active) return;
        if (!answer.success) {
          id = null;
          setState({ items: [], error: answer.message, ended: null });
          return;
        }
        id = answer.subscription;
        setState({ items: answer.items, error: null, ended: null });
      });
    }

    const ours = (handle) => (data) => {
      if (data.subscription === id) handle(data);
    };
    const put = ({ item }) => setState((shown) => ({ ...shown, items: place(shown.items, item, order, limit) }));
    const handlers = {
      // A recovered session kept the subscription; after any other connect there is none.
      connect: () => {
        if (!socket.recovered || !id) subscribe();
      },
      'subscription.added': ours(put),
      'subscription.changed': ours(put),
      'subscription.removed': ours(({ item }) =>
        setState((shown) => ({ ...shown, items: shown.items.filter((other) => other.id !== item.id) })),
      ),
      'subscription.ended': ours(({ reason }) => {
        id = null;
        setState({ items: [], error: null, ended: reason });
      }),
    };
    for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler);
    if (socket.connected) subscribe();

    return () => {
      active = false;
      for (const [event, handler] of Object.entries(handlers)) socket.off(event, handler);
      if (id && socket.connected) socket.emit('unsubscribe', { subscription: id });
    };
  }, [socket, request, attempt]);

  return { ...state, restart: () => setAttempt((n) => n + 1) };
}

/** `item` put (or moved) where `order` says, keeping the first `limit`. */
function place(items, item, order, limit) {
  const others = items.filter((other) => other.id !== item.id);
  const at = others.findIndex((other) => order(item, other) <= 0);
  others.splice(at === -1 ? others.length : at, 0, item);
  return others.slice(0, limit);
}

/** A comparator for a GET /items `sort` (['-createdAt', 'title']: descending with '-'). */
function orderOf(sort = []) {
  return (a, b) => {
    for (const key of sort) {
      const field = key.replace(/^-/, '');
      const [x, y] = [a[field], b[field]];
      if (x !== y) return (x < y ? -1 : 1) * (key.startsWith('-') ? -1 : 1);
    }
    return 0;
  };
}
