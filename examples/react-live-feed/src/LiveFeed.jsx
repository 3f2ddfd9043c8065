// The BAASIX guide's React component: connect in useEffect, keep `item.created`
// events of the `messages` collection in state, disconnect on unmount.

import { useEffect, useState } from 'react';
import { io } from 'socket.io-client';

import { COLLECTION, explain, merge, postMessage, recentMessages } from './api.js';

export default function LiveFeed({ session, onStatus, onSignOut }) {
  const [messages, setMessages] = useState([]);
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

    // livebase emits `connected` once the socket is in its rooms: no event is
    // missed from here on. A recovered session gets the events it missed right
    // after this one; otherwise fetch what was sent while we were away.
    socket.on('connected', ({ recovered, missed }) => {
      const connected = `connected (${socket.io.engine.transport.name})`;
      if (recovered) {
        onStatus('connected', `${connected} — recovered ${missed} missed event${missed === 1 ? '' : 's'}`);
        return; // no refetch: the missed events follow
      }
      onStatus('connected', connected);
      recentMessages(session.token).then(
        (items) => {
          setMessages((shown) => merge(shown, items));
          setError(null);
        },
        (failure) => setError(explain(failure)),
      );
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

    socket.on('item.created', (data) => {
      if (data.collection === COLLECTION) {
        setMessages((shown) => merge(shown, [data.item]));
      }
    });

    socket.on('item.updated', (data) => {
      if (data.collection === COLLECTION) {
        setMessages((shown) => (shown.some((item) => item.id === data.item.id) ? merge(shown, [data.item]) : shown));
      }
    });

    socket.on('item.deleted', (data) => {
      if (data.collection === COLLECTION) {
        setMessages((shown) => shown.filter((item) => item.id !== data.item.id));
      }
    });

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
      const created = await postMessage(session.token, body, session.user.id);
      setText('');
      setError(null);
      setMessages((shown) => merge(shown, [created])); // its item.created may come before or after: same id
    } catch (failure) {
      setError(`Not sent: ${explain(failure)}`);
    }
  }

  return (
    <>
      {error && (
        <p id="feed-error" className="error">
          {error}
        </p>
      )}
      <ol id="messages" className="messages" aria-label="messages">
        {messages.map((item) => (
          <Message key={item.id} item={item} me={session.user.id} />
        ))}
      </ol>
      <form id="post-form" onSubmit={send}>
        <input
          name="text"
          placeholder="Write a message…"
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
  const who = !item.author ? 'someone' : item.author === me ? 'you' : `user ${String(item.author).slice(0, 8)}`;
  const when = item.createdAt ? new Date(item.createdAt).toLocaleTimeString() : '';
  return (
    <li data-id={item.id} className={item.author === me ? 'mine' : undefined}>
      <span className="text">{item.text}</span>
      <span className="meta">{`${who} ${when}`.trim()}</span>
    </li>
  );
}
