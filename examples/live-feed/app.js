// The BAASIX guide's Vanilla JavaScript live feed, against livebase.
//
// Log in through REST (POST /auth/login), connect with the token as the guide
// does, show every `item.created` on the `messages` collection without a
// reload, and post messages through REST (POST /items/messages). The
// connection state is always on screen. After a reconnect that recovered the
// session, livebase replays the events missed meanwhile: no refetch then.
// A message's `author` is a relation to `users` (key `author_Id`): the list is
// read with `fields=*,author.firstName`, and since `item.*` events carry the
// key only, the names it brought are kept by user id for the events to use.
/* global io */
'use strict';

(function () {
  const COLLECTION = 'messages';
  const HISTORY = 50;
  const WITH_AUTHOR = '*,author.firstName'; // the message's own fields, and its author's first name
  const config = window.livebaseConfig || { socketEnabled: true, socketPath: '/realtime' };
  const $ = (id) => document.getElementById(id);

  let session = null; // {token, user} from POST /auth/login
  let socket = null;
  const shown = new Map(); // message id -> its <li>
  const names = new Map(); // user id -> first name, or null when unknown or unreadable
  const lookingUp = new Set(); // user ids whose name is being fetched

  // -- REST -----------------------------------------------------------------------

  async function rest(method, path, body) {
    const headers = {};
    if (session) headers.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(payload?.error?.message || `${method} ${path}: HTTP ${response.status}`);
      error.status = response.status;
      error.code = payload?.error?.code;
      throw error;
    }
    return payload;
  }

  // -- connection state -------------------------------------------------------------

  function setStatus(state, text) {
    const status = $('status');
    status.dataset.state = state;
    status.textContent = text;
  }

  // -- the guide's Vanilla JavaScript client ------------------------------------------

  function connect(token) {
    if (!config.socketEnabled) {
      setStatus('error', 'realtime is off on this server (SOCKET_ENABLED=false)');
      return;
    }
    setStatus('connecting', 'connecting…');

    socket = io(window.location.origin, {
      path: config.socketPath,
      transports: ['websocket', 'polling'],
      autoConnect: true,
      auth: { token },
    });

    socket.on('connect', () => {
      setStatus('connected', `connected (${socket.io.engine.transport.name})`);
      // A recovered session gets what it missed replayed as events (see `connected`);
      // otherwise messages sent while we were away arrived on nobody's screen: fetch them.
      if (!socket.recovered) loadHistory();
    });

    // livebase says how many events it is about to replay; they follow as usual events.
    socket.on('connected', ({ recovered, missed }) => {
      if (recovered) {
        const replayed = `recovered ${missed} missed event${missed === 1 ? '' : 's'}`;
        setStatus('connected', `connected (${socket.io.engine.transport.name}) — ${replayed}`);
      }
    });

    socket.on('disconnect', (reason) => {
      const again = socket.active ? ' — reconnecting…' : '';
      setStatus('disconnected', `disconnected: ${reason}${again}`);
    });

    socket.on('connect_error', (error) => {
      if (socket.active) {
        setStatus('disconnected', `cannot reach the server (${error.message}) — retrying…`);
      } else {
        // Refused by the server (bad, expired or revoked token): it will not retry.
        setStatus('error', `connection refused: ${error.message}`);
        showLogin(`The server refused the connection (${error.message}). Please log in again.`);
      }
    });

    socket.on('session.expired', () => {
      showLogin('Your session expired. Please log in again.');
    });

    // The manager's own events: each (re)opened connection, each retry.
    socket.io.on('open', () => {
      socket.io.engine.on('upgrade', (transport) => {
        setStatus('connected', `connected (${transport.name})`);
      });
    });
    socket.io.on('reconnect_attempt', (attempt) => {
      setStatus('connecting', `reconnecting (attempt ${attempt})…`);
    });

    socket.on('item.created', (data) => {
      if (data.collection === COLLECTION) {
        showMessage(data.item);
        learnAuthor(data.item);
      }
    });

    socket.on('item.updated', (data) => {
      if (data.collection === COLLECTION && shown.has(data.item.id)) {
        showMessage(data.item);
        learnAuthor(data.item);
      }
    });

    socket.on('item.deleted', (data) => {
      if (data.collection === COLLECTION) {
        shown.get(data.item.id)?.remove();
        shown.delete(data.item.id);
      }
    });
  }

  // -- the feed ---------------------------------------------------------------------

  // Who wrote a message: "you", the author's first name, or "someone" when there is
  // no author (deleted: the relation is SET NULL) or the name cannot be read.
  function byline(authorId) {
    if (!authorId) return 'someone';
    if (authorId === session.user.id) return 'you';
    if (!names.has(authorId)) return '…'; // being looked up (learnAuthor)
    return names.get(authorId) || 'someone';
  }

  // Keep the author's name from a message read with WITH_AUTHOR; for a message
  // from an event (`author_Id` only) by an author not seen yet, read it once.
  function learnAuthor(item) {
    const authorId = item.author_Id;
    if (!authorId || authorId === session.user.id) return;
    if (item.author !== undefined) {
      names.set(authorId, item.author?.firstName ?? null); // null: not readable
      return;
    }
    if (names.has(authorId) || lookingUp.has(authorId)) return;
    lookingUp.add(authorId);
    const query = new URLSearchParams({ fields: 'author.firstName' });
    rest('GET', `/items/${COLLECTION}/${encodeURIComponent(item.id)}?${query}`)
      .then((found) => names.set(authorId, found.data.author?.firstName ?? null))
      .catch(() => names.set(authorId, null)) // deleted meanwhile, or not readable: "someone"
      .finally(() => {
        lookingUp.delete(authorId);
        for (const li of shown.values()) {
          if (li.dataset.authorId === authorId) showByline(li);
        }
      });
  }

  function showByline(li) {
    const when = li.dataset.createdAt ? new Date(li.dataset.createdAt).toLocaleTimeString() : '';
    li.querySelector('.meta').textContent = `${byline(li.dataset.authorId)} ${when}`.trim();
  }

  function showMessage(item) {
    let li = shown.get(item.id);
    if (!li) {
      li = document.createElement('li');
      li.dataset.id = item.id;
      li.dataset.createdAt = item.createdAt || new Date().toISOString();
      shown.set(item.id, li);
      // Keep the list in creation order, whatever order history and events come in.
      const later = [...shown.values()].find(
        (other) => other !== li && other.isConnected && other.dataset.createdAt > li.dataset.createdAt,
      );
      $('messages').insertBefore(li, later || null);
    }
    li.replaceChildren();
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = item.text ?? '';
    const meta = document.createElement('span');
    meta.className = 'meta';
    li.append(text, meta);
    li.dataset.authorId = item.author_Id || '';
    showByline(li);
    li.classList.toggle('mine', item.author_Id === session.user.id);
    li.scrollIntoView({ block: 'nearest' });
  }

  async function loadHistory() {
    const query = new URLSearchParams({ sort: '["-createdAt"]', limit: String(HISTORY), fields: WITH_AUTHOR });
    try {
      const page = await rest('GET', `/items/${COLLECTION}?${query}`);
      $('setup').hidden = true;
      $('post-form').hidden = false;
      showError('feed-error', null);
      for (const item of page.data) learnAuthor(item);
      for (const item of page.data.reverse()) showMessage(item);
    } catch (error) {
      if (error.code === 'COLLECTION_NOT_FOUND') {
        showSetup();
      } else if (error.status === 403) {
        showError('feed-error', `Your role may not read ${COLLECTION}: ${error.message}`);
      } else {
        showError('feed-error', error.message);
      }
    }
  }

  async function postMessage(event) {
    event.preventDefault();
    const form = event.target;
    const text = form.elements.text.value.trim();
    if (!text) return;
    try {
      const created = await rest('POST', `/items/${COLLECTION}`, { text, author_Id: session.user.id });
      form.reset();
      showError('feed-error', null);
      showMessage(created.data); // the item.created event may come first or after: same id
    } catch (error) {
      showError('feed-error', `Not sent: ${error.message}`);
    }
  }

  // -- first run: creating the collection ----------------------------------------------

  // The requests that create the collection, each with the answer that means it
  // is already there (the setup is sent again after a half-done first try).
  function setupRequests() {
    return [
      [
        'POST',
        '/schemas',
        {
          collectionName: COLLECTION,
          schema: {
            name: 'Message',
            timestamps: true,
            fields: {
              text: { type: 'String', allowNull: false },
              // The React example shows one channel; this page shows them all.
              channel: { type: 'String', allowNull: false, defaultValue: 'general' },
            },
          },
        },
        'COLLECTION_EXISTS',
      ],
      [
        'POST',
        `/schemas/${COLLECTION}/relationships`,
        // Adds the key `author_Id`. SET NULL: a deleted account's messages stay, by "someone".
        { name: 'author', type: 'M2O', target: 'users', alias: 'messages', onDelete: 'SET NULL' },
        'RELATION_NAME_TAKEN',
      ],
      // Authors' first names, and nothing else of the users (no e-mails).
      ['POST', '/permissions', { role: 'user', collection: 'users', action: 'read', fields: ['id', 'firstName'] }, 'CONFLICT'],
      ['POST', '/permissions', { role: 'user', collection: COLLECTION, action: 'read', fields: ['*'] }, 'CONFLICT'],
      [
        'POST',
        '/permissions',
        {
          role: 'user',
          collection: COLLECTION,
          action: 'create',
          fields: ['text', 'author_Id', 'channel'],
          conditions: { author_Id: { eq: '$CURRENT_USER' } },
        },
        'CONFLICT',
      ],
    ];
  }

  function showSetup() {
    const base = window.location.origin;
    const lines = [`BASE=${base}`, "ADMIN=paste-an-administrator-token  # the 'token' of POST /auth/login"];
    for (const [method, path, body] of setupRequests()) {
      lines.push(
        `curl -s -X ${method} $BASE${path} -H "Authorization: Bearer $ADMIN" ` +
          `-H 'Content-Type: application/json' \\\n  -d '${JSON.stringify(body)}'`,
      );
    }
    $('setup-commands').textContent = lines.join('\n');
    const isAdmin = session.user.role === 'administrator';
    $('setup-admin').hidden = !isAdmin;
    $('setup-other').hidden = isAdmin;
    $('setup').hidden = false;
    $('post-form').hidden = true;
  }

  async function runSetup() {
    $('setup-button').disabled = true;
    try {
      for (const [method, path, body, alreadyThere] of setupRequests()) {
        try {
          await rest(method, path, body);
        } catch (error) {
          if (error.code !== alreadyThere) throw error;
        }
      }
      await loadHistory();
    } catch (error) {
      showError('feed-error', `Setup failed: ${error.message}`);
    } finally {
      $('setup-button').disabled = false;
    }
  }

  // -- logging in and out ---------------------------------------------------------------

  function showError(id, message) {
    $(id).hidden = !message;
    $(id).textContent = message || '';
  }

  function start(signedIn) {
    session = { token: signedIn.token, user: signedIn.user };
    sessionStorage.setItem('livebase-demo-session', JSON.stringify(session));
    $('me').textContent = `${session.user.email} (${session.user.role})`;
    $('login-view').hidden = true;
    $('feed-view').hidden = false;
    connect(session.token);
  }

  function showLogin(message) {
    if (socket) socket.disconnect();
    socket = null;
    session = null;
    sessionStorage.removeItem('livebase-demo-session');
    shown.clear();
    names.clear(); // the next user may see other names, or none
    $('messages').replaceChildren();
    $('feed-view').hidden = true;
    $('login-view').hidden = false;
    showError('login-error', message);
    setStatus('idle', 'not connected');
  }

  async function login(event) {
    event.preventDefault();
    const form = event.target;
    try {
      const signedIn = await rest('POST', '/auth/login', {
        email: form.elements.email.value,
        password: form.elements.password.value,
      });
      form.reset();
      showError('login-error', null);
      start(signedIn);
    } catch (error) {
      showError('login-error', error.message);
    }
  }

  async function logout() {
    try {
      await rest('POST', '/auth/logout');
    } catch {
      // the token may already be gone; logging out here is what matters
    }
    showLogin(null);
  }

  $('login-form').addEventListener('submit', login);
  $('post-form').addEventListener('submit', postMessage);
  $('logout').addEventListener('click', logout);
  $('setup-button').addEventListener('click', runSetup);

  if (typeof io !== 'function') {
    setStatus('error', 'the Socket.IO client is missing: run `make demo-assets`');
    return;
  }
  const saved = JSON.parse(sessionStorage.getItem('livebase-demo-session') || 'null');
  if (saved) start(saved);
})();
