// The BAASIX guide's React component, on a live query: connect in useEffect, follow
// the newest messages of the `general` channel (useLiveQuery), disconnect on unmount.

import { useEffect, useState } from 'react';
import { io } from 'socket.io-client';

import { CHANNEL, COLLECTION, explain, postMessage } from './api.js';
import { useLiveQuery } from './useLiveQuery.js';

// The newest 50 messages of the channel; the server keeps the result up to date.
// `author` is a relation to `users`: every item, in the snapshot and in each
// event, comes with `author: {id, firstName}` (or null), under our permissions.
const NEWEST_IN_CHANNEL = {
  collection: COLLECTION,
  filter: { channel: { eq: CHANNEL } },
  fields: ['*', 'author.firstName'],
  sort: ['-createdAt'],
  limit: 50,
};

export default function LiveFeed({ session, onStatus, onSignOut }) {
  const [socket, setSocket] = useState(null);
  const { items, error: refused, ended, restart } = useLiveQuery(socket, NEWEST_IN_CHANNEL);
  const [error, setError] = useState(null);
  const [text, setText] = useState('');

  useEffect(() => {
    onStatus('connecting', 'connecting…');
    const socket = io(window.location.origin, {
      path: '/realtime',
      transports: ['websocket', 'polling'],
      autoConnect: true,
      auth: { token: session.token }, // from the login form
    });

    // livebase emits `connected` once the socket is in its rooms. A recovered
    // session keeps its live query, and the changes it missed follow as
    // subscription events: nothing to fetch. Otherwise useLiveQuery subscribes again.
    socket.on('connected', ({ recovered, missed }) => {
      const connected = `connected (${socket.io.engine.transport.name})`;
      const plural = missed === 1 ? '' : 's';
      onStatus('connected', recovered ? `${connected} — recovered ${missed} missed event${plural}` : connected);
    });

    socket.on('disconnect', (reason) => {
      onStatus('disconnected', `disconnected: ${reason}${socket.active ? ' — reconnecting…' : ''}`);
    });

    socket.on('connect_error', (failure) => {
      if (socket.active) {
        onStatus('disconnected', `cannot reach the server (${failure.message}) — retrying…`);
      } else {
        // Refused by the server (bad, expired or revoked token): it will not retry.
        onSignOut(`The server refused the connection (${failure.message}). Please log in again.`);
      }
    });

    socket.on('session.expired', () => onSignOut('Your session expired. Please log in again.'));

    setSocket(socket);
    return () => {
      socket.off(); // leaving on purpose: no "disconnected" on the way out
      socket.disconnect();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- one socket per session
  }, [session.token]);

  async function send(event) {
    event.preventDefault();
    const body = text.trim();
    if (!body) return;
    try {
      await postMessage(session.token, body, session.user.id);
      setText('');
      setError(null); // the message itself comes as `subscription.added`
    } catch (failure) {
      setError(`Not sent: ${explain(failure)}`);
    }
  }

  return (
    <>
      {refused && (
        <p id="feed-error" className="error">
          Cannot follow #{CHANNEL}: {refused}. The README shows how an administrator creates the{' '}
          {COLLECTION} collection.
        </p>
      )}
      {ended && (
        <div id="feed-ended" className="notice" role="alert">
          <p>The server ended the live feed: {ended}.</p>
          <button id="resubscribe" type="button" onClick={restart}>
            Follow it again
          </button>
        </div>
      )}
      {error && (
        <p id="post-error" className="error">
          {error}
        </p>
      )}
      <h2>#{CHANNEL}</h2>
      {/* The query's order is newest first; the page shows the newest last, as chats do. */}
      <ol id="messages" className="messages" aria-label="messages">
        {[...items].reverse().map((item) => (
          <Message key={item.id} item={item} me={session.user.id} />
        ))}
      </ol>
      <form id="post-form" onSubmit={send}>
        <input
          name="text"
          placeholder={`Write to #${CHANNEL}…`}
          maxLength={500}
          autoComplete="off"
          required
          value={text}
          onChange={(event) => setText(event.target.value)}
        />
        <button type="submit">Send</button>
      </form>
    </>
  );
}

function Message({ item, me }) {
  const mine = item.author_Id === me;
  // "someone": no author (a deleted account: the relation is SET NULL), or a name we may not read.
  const who = mine ? 'you' : item.author?.firstName || 'someone';
  const when = item.createdAt ? new Date(item.createdAt).toLocaleTimeString() : '';
  return (
    <li data-id={item.id} className={mine ? 'mine' : undefined}>
      <span className="text">{item.text}</span>
      <span className="meta">{`${who} ${when}`.trim()}</span>
    </li>
  );
}
