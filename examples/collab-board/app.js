// A shared board of notes, against livebase (SPEC §13): all three collaboration
// features in one page, in plain JavaScript.
//
// - Notes are the items of `notes`, kept on screen by a live query (`subscribe`):
//   anyone's new, moved, edited or deleted note shows at once.
// - Editing a note is a conditional write: the page keeps the ETag of the version
//   the edit started from and sends `PATCH` with `If-Match`. When someone else
//   saved in between, livebase answers 412 and writes nothing; the page shows
//   their version next to yours and lets you keep theirs or overwrite with yours.
// - Everyone's pointer travels to the others by `broadcast` in the board's room,
//   and who is looking is that room's presence (`presence.track` / `list` /
//   `join` / `leave`).
//
// The board is one item of a `boards` collection, and its room is that item's
// room, `item:boards:<id>`: livebase lets in only sockets that may read the item,
// and allows broadcast and presence there without any extension. (A custom room
// such as `board:1` would work too, but without a validator anyone may join it.)
//
// Nothing a user wrote ever goes through innerHTML: text goes in with textContent.
/* global io */
'use strict';

(function () {
  const NOTES = 'notes';
  const BOARDS = 'boards';
  const BOARD_WIDTH = 1000;
  const BOARD_HEIGHT = 620;
  const NOTE_WIDTH = 180;
  const NOTE_HEIGHT = 110;
  // Pointer updates are sent at most every 50 ms (20 a second), under the server's
  // SOCKET_BROADCAST_RATE (30 a second by default) even with a drag on top.
  const POINTER_INTERVAL_MS = 50;
  const ACK_TIMEOUT_MS = 10_000;
  // The same person keeps the same colour everywhere: their cursor, their face, their notes.
  const COLORS = ['#d9480f', '#2f6fde', '#2b8a3e', '#9c36b5', '#c2255c', '#0b7285', '#5c940d', '#e67700'];
  const NOTE_COLORS = ['#ffe8cc', '#dbe4ff', '#d3f9d8', '#f3d9fa', '#ffdeeb', '#c5f6fa', '#e9fac8', '#fff3bf'];
  const config = window.livebaseConfig || { socketEnabled: true, socketPath: '/realtime' };
  const $ = (id) => document.getElementById(id);

  let session = null; // {token, user} from POST /auth/login
  let socket = null;
  let board = null; // the `boards` item everyone meets on
  let room = null; // its room, item:boards:<id>
  let subscription = null; // the live query's id
  const notes = new Map(); // note id -> {item, element}
  const members = new Map(); // presence key (a socket id) -> {userId, state}
  const cursors = new Map(); // socket id -> its cursor element
  let editing = null; // {id, etag, base}: the note being edited and the version it started from
  let conflict = null; // {id, etag, theirs}: a refused save waiting for a decision
  let dragging = null; // {id, dx, dy, x, y}

  // -- REST -------------------------------------------------------------------------

  /** A REST call; answers {data, etag}, or throws an Error with `status` and `code`. */
  async function rest(method, path, body, headers = {}) {
    const sent = { ...headers };
    if (session) sent.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers: sent,
      // Always the server's current version: an edit must start from it, and a
      // conflict must show it (the browser's cache would revalidate, but why ask it).
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(payload?.error?.message || `${method} ${path}: HTTP ${response.status}`);
      error.status = response.status;
      error.code = payload?.error?.code;
      throw error;
    }
    return { data: payload?.data ?? payload, etag: response.headers.get('ETag') };
  }

  // -- who I am, in colours ------------------------------------------------------------

  function hash(text) {
    let value = 0;
    for (const char of String(text)) value = (value * 31 + char.codePointAt(0)) >>> 0;
    return value;
  }

  const colorOf = (userId) => COLORS[hash(userId) % COLORS.length];
  const noteColorOf = (userId) => NOTE_COLORS[hash(userId) % NOTE_COLORS.length];
  // Colours come from other people's messages: only a plain #rrggbb reaches a style.
  const safeColor = (value, fallback) => (/^#[0-9a-f]{6}$/i.test(value ?? '') ? value : fallback);

  function displayName(user) {
    const full = [user.firstName, user.lastName].filter(Boolean).join(' ');
    return full || String(user.email || 'someone').split('@')[0];
  }

  function initials(name) {
    const words = String(name).split(/[\s._-]+/).filter(Boolean);
    const letters = words.length > 1 ? words[0][0] + words[1][0] : String(name).slice(0, 2);
    return letters.toUpperCase();
  }

  function myState() {
    return { name: displayName(session.user), color: colorOf(session.user.id) };
  }

  // -- connection state -------------------------------------------------------------

  function setStatus(state, text) {
    const status = $('status');
    status.dataset.state = state;
    status.textContent = text;
  }

  function showError(id, message) {
    $(id).hidden = !message;
    $(id).textContent = message || '';
  }

  /** An event with an ack, as a promise (socket.io-client fails it after the timeout). */
  function ask(event, payload) {
    return socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
  }

  function connect() {
    if (!config.socketEnabled) {
      setStatus('error', 'realtime is off on this server (SOCKET_ENABLED=false)');
      return;
    }
    setStatus('connecting', 'connecting…');
    socket = io(window.location.origin, {
      path: config.socketPath,
      transports: ['websocket', 'polling'],
      auth: { token: session.token },
    });

    socket.on('connect', () => {
      setStatus('connected', `connected (${socket.io.engine.transport.name})`);
      // A recovered session is still in the room, tracked and subscribed, and gets
      // the missed note changes replayed. Anything else starts from scratch.
      if (socket.recovered) refreshPresence().catch(() => {}); // gone again: the next connect retries
      else enterBoard();
    });

    socket.on('disconnect', (reason) => {
      const again = socket.active ? ' — reconnecting…' : '';
      setStatus('disconnected', `disconnected: ${reason}${again}`);
      // Other people's pointers would freeze where they were: hide them until they move.
      for (const cursor of cursors.values()) cursor.hidden = true;
    });

    socket.on('connect_error', (error) => {
      if (socket.active) {
        setStatus('disconnected', `cannot reach the server (${error.message}) — retrying…`);
      } else {
        setStatus('error', `connection refused: ${error.message}`);
        showLogin(`The server refused the connection (${error.message}). Please log in again.`);
      }
    });

    socket.on('session.expired', () => showLogin('Your session expired. Please log in again.'));
    socket.io.on('reconnect_attempt', (attempt) => setStatus('connecting', `reconnecting (attempt ${attempt})…`));

    socket.on('subscription.added', ({ subscription: id, item }) => {
      if (id === subscription) showNote(item);
    });
    socket.on('subscription.changed', ({ subscription: id, item }) => {
      if (id === subscription) showNote(item);
    });
    socket.on('subscription.removed', ({ subscription: id, item }) => {
      if (id === subscription) removeNote(item.id);
    });
    socket.on('subscription.ended', ({ subscription: id, reason }) => {
      if (id !== subscription) return;
      // E.g. the schema of notes changed: what is shown may be stale; start over.
      subscription = null;
      showError('board-error', `The board stopped following the notes (${reason}); following them again…`);
      subscribeNotes()
        .then(() => showError('board-error', null))
        .catch(() => {}); // the connection went away: the next connect subscribes anyway
    });

    socket.on('presence.join', ({ room: where, key, userId, state }) => {
      if (where !== room) return;
      members.set(key, { userId, state });
      showPeople();
    });
    socket.on('presence.leave', ({ room: where, key }) => {
      if (where !== room) return;
      members.delete(key);
      removeCursor(key);
      showPeople();
    });

    socket.on('room.message', ({ room: where, event, data, from }) => {
      if (where === room && event === 'pointer') showPointer(from.socketId, data);
    });
  }

  /** Join the board's room, say who is here, see who else is, follow the notes. */
  async function enterBoard() {
    try {
      const joined = await ask('join', { room });
      if (!joined.success) throw new Error(joined.message);
      const tracked = await ask('presence.track', { room, state: myState() });
      if (!tracked.success) throw new Error(tracked.message);
      await Promise.all([refreshPresence(), subscribeNotes()]);
    } catch (error) {
      // A timeout here means the connection went away: the next connect tries again.
      if (socket?.connected) showError('board-error', `Could not open the board: ${error.message}`);
    }
  }

  async function refreshPresence() {
    const answer = await ask('presence.list', { room });
    if (!answer.success) return showError('board-error', `Who is here? ${answer.message}`);
    members.clear();
    for (const { key, userId, state } of answer.members) members.set(key, { userId, state });
    for (const key of [...cursors.keys()]) if (!members.has(key)) removeCursor(key);
    showPeople();
  }

  async function subscribeNotes() {
    const answer = await ask('subscribe', { collection: NOTES, sort: ['createdAt'], limit: 1000 });
    if (!answer.success) return showError('board-error', `Cannot follow the notes: ${answer.message}`);
    subscription = answer.subscription;
    const current = new Set(answer.items.map((item) => item.id));
    for (const id of [...notes.keys()]) if (!current.has(id)) removeNote(id);
    for (const item of answer.items) showNote(item);
  }

  // -- who is here ---------------------------------------------------------------------

  function showPeople() {
    // One face per person: a user with two tabs open is two members, one face.
    const people = new Map();
    for (const { userId, state } of members.values()) {
      if (!people.has(userId)) people.set(userId, state || {});
    }
    const list = $('people');
    list.replaceChildren();
    for (const [userId, state] of people) {
      const name = String(state.name || 'someone').slice(0, 60);
      const li = document.createElement('li');
      li.className = 'person';
      li.dataset.userId = userId;
      li.title = name;
      const face = document.createElement('span');
      face.className = 'face';
      face.textContent = initials(name);
      face.style.background = safeColor(state.color, '#667085');
      const label = document.createElement('span');
      label.className = 'name';
      label.textContent = userId === session.user.id ? `${name} (you)` : name;
      li.append(face, label);
      list.append(li);
    }
    // Cursors carry the names too: they may have come before their owner's presence.
    for (const [key, cursor] of cursors) labelCursor(cursor, members.get(key));
  }

  // -- other people's pointers ------------------------------------------------------------

  function labelCursor(cursor, member) {
    const name = String(member?.state?.name || 'someone').slice(0, 60);
    cursor.querySelector('.label').textContent = name;
    cursor.style.setProperty('--color', safeColor(member?.state?.color, '#667085'));
    cursor.dataset.userId = member?.userId ?? '';
  }

  function showPointer(socketId, data) {
    let cursor = cursors.get(socketId);
    if (data?.gone) {
      if (cursor) cursor.hidden = true;
      return;
    }
    const x = Number(data?.x);
    const y = Number(data?.y);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    if (!cursor) {
      cursor = document.createElement('div');
      cursor.className = 'cursor';
      cursor.dataset.socketId = socketId;
      const label = document.createElement('span');
      label.className = 'label';
      cursor.append(label);
      cursors.set(socketId, cursor);
      labelCursor(cursor, members.get(socketId));
      $('board').append(cursor);
    }
    cursor.hidden = false;
    cursor.style.transform = `translate(${clamp(x, 0, BOARD_WIDTH)}px, ${clamp(y, 0, BOARD_HEIGHT)}px)`;
    // A note being dragged over there moves here too, before the drop is saved.
    const drag = data.drag;
    if (drag && notes.has(drag.id) && dragging?.id !== drag.id && editing?.id !== drag.id) {
      placeNote(notes.get(drag.id).element, Number(drag.x), Number(drag.y));
    }
  }

  function removeCursor(socketId) {
    cursors.get(socketId)?.remove();
    cursors.delete(socketId);
  }

  // My pointer, throttled: the first move goes at once, then the latest one every
  // POINTER_INTERVAL_MS while it keeps moving. Positions are in board pixels, so
  // they mean the same on every screen.
  let pointerTimer = null;
  let pendingPointer = null;

  function sendPointer(data) {
    pendingPointer = data;
    if (!pointerTimer) flushPointer();
  }

  function flushPointer() {
    pointerTimer = null;
    if (!pendingPointer || !socket?.connected || !room) return;
    const data = pendingPointer;
    pendingPointer = null;
    socket.emit('broadcast', { room, event: 'pointer', data }, (answer) => {
      // Over SOCKET_BROADCAST_RATE the server drops one: the next move makes up for it.
      if (!answer?.success && answer?.message !== 'rate limited') console.warn('pointer:', answer?.message);
    });
    pointerTimer = setTimeout(flushPointer, POINTER_INTERVAL_MS);
  }

  function boardPoint(event) {
    const box = $('board').getBoundingClientRect();
    return { x: Math.round(event.clientX - box.left), y: Math.round(event.clientY - box.top) };
  }

  // -- notes -----------------------------------------------------------------------------

  const clamp = (value, low, high) => Math.min(Math.max(Number.isFinite(value) ? value : low, low), high);

  function placeNote(element, x, y) {
    element.style.left = `${clamp(x, 0, BOARD_WIDTH - NOTE_WIDTH)}px`;
    element.style.top = `${clamp(y, 0, BOARD_HEIGHT - NOTE_HEIGHT)}px`;
  }

  function button(className, text, title, onClick) {
    const element = document.createElement('button');
    element.type = 'button';
    element.className = className;
    element.textContent = text;
    element.title = title;
    element.setAttribute('aria-label', title);
    element.addEventListener('click', (event) => {
      event.stopPropagation();
      onClick();
    });
    return element;
  }

  function showNote(item) {
    let shown = notes.get(item.id);
    if (!shown) {
      const element = document.createElement('div');
      element.className = 'note';
      element.dataset.id = item.id;
      element.addEventListener('pointerdown', (event) => startDrag(event, item.id));
      element.addEventListener('dblclick', () => startEdit(item.id));
      shown = { item, element };
      notes.set(item.id, shown);
      $('board').append(element);
    }
    const before = shown.item;
    shown.item = { ...before, ...item };
    const { element } = shown;
    element.style.background = safeColor(shown.item.color, NOTE_COLORS[0]);
    if (dragging?.id !== item.id) placeNote(element, Number(shown.item.x), Number(shown.item.y));
    if (editing?.id === item.id) {
      // Keep the draft; say that the note changed under it (the save will tell more).
      element.classList.toggle('changed', shown.item.text !== editing.base);
      return;
    }
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = shown.item.text ?? '';
    const tools = document.createElement('div');
    tools.className = 'tools';
    tools.append(
      button('edit', '✎', 'Edit this note', () => startEdit(item.id)),
      // Deleting is not conditional: the live query shows everyone the note as it
      // is now, so what you delete is what you see (a stale ETag would only mean
      // someone moved it).
      button('delete', '×', 'Delete this note', () => deleteNote(item.id)),
    );
    element.classList.remove('editing', 'changed');
    element.replaceChildren(tools, text);
  }

  function removeNote(id) {
    notes.get(id)?.element.remove();
    notes.delete(id);
    if (editing?.id === id) editing = null;
    if (conflict?.id === id) {
      closeConflict();
      showError('board-error', 'The note you were editing was deleted.');
    }
  }

  async function addNote(event) {
    event.preventDefault();
    const form = event.target;
    const text = form.elements.text.value.trim();
    if (!text) return;
    // New notes fill the board in a grid, then start over on top.
    const n = notes.size;
    const x = 24 + (n % 5) * 190;
    const y = 24 + (Math.floor(n / 5) % 4) * 140;
    try {
      const created = await rest('POST', `/items/${NOTES}`, { text, x, y, color: noteColorOf(session.user.id) });
      form.reset();
      showError('board-error', null);
      showNote(created.data); // the live query's `added` may come before or after: same id
    } catch (error) {
      showError('board-error', `Not added: ${error.message}`);
    }
  }

  async function deleteNote(id) {
    try {
      await rest('DELETE', `/items/${NOTES}/${encodeURIComponent(id)}`);
      removeNote(id);
    } catch (error) {
      showError('board-error', `Not deleted: ${error.message}`);
    }
  }

  // -- moving a note ----------------------------------------------------------------------

  function startDrag(event, id) {
    if (event.button !== 0 || editing?.id === id || event.target.closest('button, textarea')) return;
    const { element } = notes.get(id);
    const point = boardPoint(event);
    dragging = { id, dx: point.x - element.offsetLeft, dy: point.y - element.offsetTop, moved: false };
    element.setPointerCapture(event.pointerId);
    element.classList.add('dragging');
    event.preventDefault();
  }

  function moveDrag(event) {
    const point = boardPoint(event);
    if (!dragging) {
      sendPointer(point);
      return;
    }
    const { element } = notes.get(dragging.id) ?? {};
    if (!element) return;
    dragging.x = clamp(point.x - dragging.dx, 0, BOARD_WIDTH - NOTE_WIDTH);
    dragging.y = clamp(point.y - dragging.dy, 0, BOARD_HEIGHT - NOTE_HEIGHT);
    dragging.moved = true;
    placeNote(element, dragging.x, dragging.y);
    sendPointer({ ...point, drag: { id: dragging.id, x: dragging.x, y: dragging.y } });
  }

  // A move is saved without If-Match, on purpose: a position is last-writer-wins
  // (two people dragging one note end where the last one dropped it, and nobody
  // loses typed work), while an If-Match here would be refused whenever anyone had
  // edited the note's text since this page last fetched it.
  async function endDrag() {
    if (!dragging) return;
    const { id, x, y, moved } = dragging;
    dragging = null;
    const shown = notes.get(id);
    shown?.element.classList.remove('dragging');
    if (!shown || !moved) return;
    try {
      const saved = await rest('PATCH', `/items/${NOTES}/${encodeURIComponent(id)}`, {
        x: Math.round(x),
        y: Math.round(y),
      });
      showNote(saved.data);
    } catch (error) {
      showError('board-error', `Not moved: ${error.message}`);
      showNote(shown.item); // back where the server has it
    }
  }

  // -- editing a note: a conditional write ------------------------------------------------------

  async function startEdit(id) {
    if (editing || conflict) return; // one edit at a time
    const shown = notes.get(id);
    if (!shown) return;
    try {
      // The version the edit starts from, and its ETag: a save is refused if it changed since.
      const current = await rest('GET', `/items/${NOTES}/${encodeURIComponent(id)}`);
      editing = { id, etag: current.etag, base: current.data.text ?? '' };
      showNote(current.data);
    } catch (error) {
      showError('board-error', `Cannot edit: ${error.message}`);
      return;
    }
    const { element } = shown;
    const area = document.createElement('textarea');
    area.className = 'draft';
    area.maxLength = 500;
    area.value = editing.base;
    area.setAttribute('aria-label', 'note text');
    area.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) saveEdit();
      if (event.key === 'Escape') cancelEdit();
    });
    const actions = document.createElement('div');
    actions.className = 'actions';
    const save = button('save', 'Save', 'Save this note', saveEdit);
    const cancel = button('cancel secondary', 'Cancel', 'Cancel the edit', cancelEdit);
    actions.append(save, cancel);
    const changed = document.createElement('p');
    changed.className = 'changed-hint';
    changed.textContent = 'changed by someone meanwhile';
    element.classList.add('editing');
    element.replaceChildren(area, changed, actions);
    area.focus();
  }

  function cancelEdit() {
    const id = editing?.id;
    editing = null;
    if (notes.has(id)) showNote(notes.get(id).item);
  }

  async function saveEdit() {
    if (!editing || conflict) return;
    const { id, base } = editing;
    const draft = notes.get(id)?.element.querySelector('textarea.draft')?.value ?? '';
    let etag = editing.etag;
    // A 412 whose text is still the one the edit started from was only a move (or a
    // colour): not a conflict for the text, so save again with the new ETag.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        const saved = await writeText(id, draft, etag);
        editing = null;
        showError('board-error', null);
        showNote(saved.data);
        return;
      } catch (error) {
        if (error.status !== 412) return failEdit(id, error);
      }
      let theirs;
      try {
        theirs = await rest('GET', `/items/${NOTES}/${encodeURIComponent(id)}`);
      } catch (error) {
        return failEdit(id, error);
      }
      if ((theirs.data.text ?? '') !== base) return openConflict(id, theirs, draft);
      etag = theirs.etag;
    }
    showError('board-error', 'The note keeps changing; try again.');
  }

  function writeText(id, text, etag) {
    return rest('PATCH', `/items/${NOTES}/${encodeURIComponent(id)}`, { text }, { 'If-Match': etag });
  }

  function failEdit(id, error) {
    if (error.status === 404) {
      removeNote(id);
      showError('board-error', 'The note you were editing was deleted.');
    } else {
      showError('board-error', `Not saved: ${error.message}`);
    }
  }

  function openConflict(id, theirs, mine) {
    conflict = { id, etag: theirs.etag, theirs: theirs.data };
    $('conflict-theirs').textContent = theirs.data.text ?? '';
    $('conflict-mine').value = mine;
    $('conflict').hidden = false;
    const element = notes.get(id)?.element;
    element?.classList.add('conflicted');
    const draft = element?.querySelector('textarea.draft');
    if (draft) draft.readOnly = true; // "mine" is edited in the panel now
    $('conflict').scrollIntoView({ block: 'nearest' });
  }

  function closeConflict() {
    const id = conflict?.id;
    conflict = null;
    editing = null;
    $('conflict').hidden = true;
    notes.get(id)?.element.classList.remove('conflicted');
    if (notes.has(id)) showNote(notes.get(id).item);
  }

  // The note then shows what the live query has, which is "theirs" or newer.
  function keepTheirs() {
    closeConflict();
  }

  // Overwrite on purpose, but still conditionally: against the version just shown as
  // "theirs". If it changed yet again, the panel shows the newer one instead.
  async function overwriteWithMine() {
    if (!conflict) return;
    const { id, etag } = conflict;
    const mine = $('conflict-mine').value;
    $('overwrite-mine').disabled = true;
    try {
      const saved = await writeText(id, mine, etag);
      closeConflict();
      showError('board-error', null);
      showNote(saved.data);
    } catch (error) {
      if (error.status !== 412) {
        closeConflict();
        failEdit(id, error);
        return;
      }
      try {
        openConflict(id, await rest('GET', `/items/${NOTES}/${encodeURIComponent(id)}`), mine);
      } catch (again) {
        closeConflict();
        failEdit(id, again);
      }
    } finally {
      $('overwrite-mine').disabled = false;
    }
  }

  // -- first run: creating the board ------------------------------------------------------------

  const NOTE_FIELDS = ['text', 'x', 'y', 'color'];

  /** The requests that set the board up; `missing` says which parts do not exist yet. */
  function setupRequests(missing = { boards: true, notes: true, board: true }) {
    const requests = [];
    if (missing.boards) {
      requests.push(
        [
          'POST',
          '/schemas',
          {
            collectionName: BOARDS,
            schema: { name: 'Board', timestamps: true, fields: { name: { type: 'String', allowNull: false } } },
          },
        ],
        // Reading the board is what lets a socket into its room.
        ['POST', '/permissions', { role: 'user', collection: BOARDS, action: 'read', fields: ['*'] }],
      );
    }
    if (missing.notes) {
      requests.push(
        [
          'POST',
          '/schemas',
          {
            collectionName: NOTES,
            schema: {
              name: 'Note',
              timestamps: true,
              fields: {
                text: { type: 'String', allowNull: false },
                x: { type: 'Integer', allowNull: false, defaultValue: 0 },
                y: { type: 'Integer', allowNull: false, defaultValue: 0 },
                color: { type: 'String' },
              },
            },
          },
        ],
        ['POST', '/permissions', { role: 'user', collection: NOTES, action: 'read', fields: ['*'] }],
        ['POST', '/permissions', { role: 'user', collection: NOTES, action: 'create', fields: NOTE_FIELDS }],
        ['POST', '/permissions', { role: 'user', collection: NOTES, action: 'update', fields: NOTE_FIELDS }],
        ['POST', '/permissions', { role: 'user', collection: NOTES, action: 'delete' }],
      );
    }
    if (missing.board) requests.push(['POST', `/items/${BOARDS}`, { name: 'Our board' }]);
    return requests;
  }

  /** What is missing of the board, or null when it is all there (and `board` is set). */
  async function findBoard() {
    const missing = { boards: false, notes: false, board: false };
    const query = new URLSearchParams({ sort: '["createdAt"]', limit: '1' });
    try {
      const boards = await rest('GET', `/items/${BOARDS}?${query}`);
      board = boards.data[0] ?? null;
      missing.board = !board;
    } catch (error) {
      if (error.code !== 'COLLECTION_NOT_FOUND') throw error;
      missing.boards = true;
      missing.board = true;
    }
    try {
      await rest('GET', `/items/${NOTES}?limit=1`);
    } catch (error) {
      if (error.code !== 'COLLECTION_NOT_FOUND') throw error;
      missing.notes = true;
    }
    return missing.boards || missing.notes || missing.board ? missing : null;
  }

  async function openBoard() {
    let missing;
    try {
      missing = await findBoard();
    } catch (error) {
      const forbidden = error.status === 403 ? 'Your role may not read the board: ' : '';
      showError('board-error', `${forbidden}${error.message}`);
      return;
    }
    if (missing) {
      showSetup(missing);
      return;
    }
    $('setup').hidden = true;
    $('add-form').hidden = false;
    showError('board-error', null);
    room = `item:${BOARDS}:${board.id}`;
    connect();
  }

  function showSetup(missing) {
    const lines = [
      `BASE=${window.location.origin}`,
      "ADMIN=paste-an-administrator-token  # the 'token' of POST /auth/login",
    ];
    for (const [method, path, body] of setupRequests(missing)) {
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
    $('add-form').hidden = true;
    $('setup').dataset.missing = JSON.stringify(missing);
  }

  async function runSetup() {
    $('setup-button').disabled = true;
    try {
      for (const [method, path, body] of setupRequests(JSON.parse($('setup').dataset.missing))) {
        await rest(method, path, body);
      }
      await openBoard();
    } catch (error) {
      showError('board-error', `Setup failed: ${error.message}`);
    } finally {
      $('setup-button').disabled = false;
    }
  }

  // -- logging in and out ------------------------------------------------------------------------

  function start(signedIn) {
    session = { token: signedIn.token, user: signedIn.user };
    sessionStorage.setItem('livebase-board-session', JSON.stringify(session));
    $('me').textContent = `${displayName(session.user)} (${session.user.role})`;
    $('login-view').hidden = true;
    $('board-view').hidden = false;
    openBoard();
  }

  function showLogin(message) {
    if (socket) socket.disconnect();
    socket = null;
    session = null;
    board = null;
    room = null;
    subscription = null;
    editing = null;
    conflict = null;
    dragging = null;
    sessionStorage.removeItem('livebase-board-session');
    notes.clear();
    members.clear();
    cursors.clear();
    $('board').replaceChildren();
    $('people').replaceChildren();
    $('conflict').hidden = true;
    $('board-view').hidden = true;
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
      start(signedIn.data);
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
  $('add-form').addEventListener('submit', addNote);
  $('logout').addEventListener('click', logout);
  $('setup-button').addEventListener('click', runSetup);
  $('keep-theirs').addEventListener('click', keepTheirs);
  $('overwrite-mine').addEventListener('click', overwriteWithMine);
  $('board').addEventListener('pointermove', moveDrag);
  $('board').addEventListener('pointerup', endDrag);
  $('board').addEventListener('pointercancel', endDrag);
  $('board').addEventListener('pointerleave', () => {
    if (!dragging) sendPointer({ gone: true });
  });

  if (typeof io !== 'function') {
    setStatus('error', 'the Socket.IO client is missing: run `make demo-assets`');
    return;
  }
  const saved = JSON.parse(sessionStorage.getItem('livebase-board-session') || 'null');
  if (saved) start(saved);
})();
