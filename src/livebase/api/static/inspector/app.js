// The livebase inspector (docs/operations.md, "Inspector").
//
// An administrator logs in (POST /auth/login); the page connects over Socket.IO
// and joins the administrators' room `admin:inspector`, where the server pushes
// the cluster's sockets, the change log's newest entries and headline figures.
// The trace form calls GET /stats/realtime/trace. Nothing is kept past the tab:
// the token lives in this script's memory only. Every value from the server is
// put on the page as text (textContent), never as HTML.
/* global io */
'use strict';

(function () {
  const ROOM = 'admin:inspector';
  const ADMIN_ROLE = 'administrator';
  const TAIL_ROWS = 200;
  const config = window.livebaseConfig || { socketEnabled: true, socketPath: '/realtime' };
  const $ = (id) => document.getElementById(id);

  let session = null; // {token, user}
  let socket = null;
  const tailShown = new Set(); // offsets on the page

  // -- helpers ----------------------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement('tr');
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
    return tr;
  }

  function td(child) {
    const cell = document.createElement('td');
    cell.append(child);
    return cell;
  }

  function time(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
  }

  function showError(id, message) {
    $(id).hidden = !message;
    $(id).textContent = message || '';
  }

  function setStatus(state, text) {
    $('status').dataset.state = state;
    $('status').textContent = text;
  }

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
      throw new Error(payload?.error?.message || `${method} ${path}: HTTP ${response.status}`);
    }
    return payload;
  }

  // -- the room -------------------------------------------------------------------------

  function connect(token) {
    if (!config.socketEnabled) {
      setStatus('error', 'realtime is off on this server (SOCKET_ENABLED=false)');
      return;
    }
    setStatus('connecting', 'connecting…');
    // No session recovery: the room is joined again on every connect, and the
    // server sends a fresh picture to each new watcher.
    socket = io(window.location.origin, {
      path: config.socketPath,
      transports: ['websocket', 'polling'],
      auth: { token, recovery: false },
    });
    socket.on('connect', () => {
      socket.emit('join', ROOM, (answer) => {
        if (answer && answer.success) {
          setStatus('connected', `watching (${socket.io.engine.transport.name})`);
          showError('feed-error', '');
        } else {
          setStatus('error', 'refused');
          showError('feed-error', `joining ${ROOM} was refused: ${answer?.message || 'no answer'}`);
        }
      });
    });
    socket.on('disconnect', (reason) => setStatus('connecting', `disconnected (${reason}); reconnecting…`));
    socket.on('connect_error', (error) => {
      setStatus('error', `cannot connect: ${error.message}`);
      if (error.message && /token|auth/i.test(error.message)) showLogin('please log in again');
    });
    socket.on('session.expired', () => showLogin('your session expired: please log in again'));
    socket.on('inspector.sockets', showSockets);
    socket.on('inspector.tail', showTail);
    socket.on('inspector.figures', showFigures);
  }

  // -- what the room brings ----------------------------------------------------------------

  function showSockets(listing) {
    const body = $('sockets').tBodies[0];
    const rows = (listing.sockets || []).map((s) => {
      const user = s.email ? `${s.email}` : s.userId || '(anonymous)';
      const userCell = el('td', user);
      if (s.userId) userCell.title = s.userId;
      const rooms = (s.rooms || []).join(', ') + (s.roomCount > (s.rooms || []).length ? ` (+${s.roomCount - s.rooms.length})` : '');
      const tr = row([userCell, s.role, s.transport, s.node, rooms, time(s.connectedAt), s.queuedBytes]);
      tr.dataset.sid = s.sid;
      if (s.userId) tr.dataset.user = s.userId;
      return tr;
    });
    body.replaceChildren(...rows);
    const shown = (listing.sockets || []).length;
    const nodes = listing.nodes || {};
    let count = `${listing.total} open`;
    if (shown < listing.total) count += `, the newest ${shown} shown (at most ${listing.limit})`;
    if (nodes.clustered) count += ` · ${nodes.answered} node${nodes.answered === 1 ? '' : 's'} answered`;
    $('sockets-count').textContent = count;
  }

  function showTail(batch) {
    const body = $('tail').tBodies[0];
    for (const entry of batch.entries || []) {
      if (tailShown.has(entry.offset)) continue;
      tailShown.add(entry.offset);
      const tr = row([entry.offset, entry.collection, entry.key, entry.action, entry.userId || '—', time(entry.time)]);
      tr.dataset.offset = entry.offset;
      tr.tabIndex = 0;
      tr.title = 'trace this entry';
      tr.addEventListener('click', () => pick(entry));
      // Newest first, whatever order the batches came in (offsets grow with commits).
      let before = null;
      for (const other of body.rows) {
        if (Number(other.dataset.offset) < Number(entry.offset)) {
          before = other;
          break;
        }
      }
      body.insertBefore(tr, before);
    }
    while (body.rows.length > TAIL_ROWS) {
      tailShown.delete(body.rows[body.rows.length - 1].dataset.offset);
      body.deleteRow(body.rows.length - 1);
    }
  }

  function pick(entry) {
    const form = $('trace-form');
    form.elements.offset.value = entry.offset;
    if (!form.elements.user.value && entry.userId) form.elements.user.value = entry.userId;
    form.elements.user.focus();
  }

  function figure(value, unit) {
    if (value === null || value === undefined) return '–';
    return unit ? `${value} ${unit}` : String(value);
  }

  function showFigures(figures) {
    const values = {
      openSockets: figure(figures.openSockets),
      eventsPerSecond: figure(figures.eventsPerSecond),
      framesPerSecond: figure(figures.framesPerSecond),
      latencyP99: figures.latencyP99 === null || figures.latencyP99 === undefined
        ? '–' : `${Math.round(figures.latencyP99 * 1000 * 10) / 10} ms`,
      slowConsumerDisconnects: figure(figures.slowConsumerDisconnects),
      changeLogLag: figure(figures.changeLog?.behind, 'entries'),
    };
    for (const dd of $('figures').querySelectorAll('dd[data-figure]')) {
      dd.textContent = values[dd.dataset.figure] ?? '–';
    }
    const nodes = figures.nodes || {};
    $('figures-nodes').textContent = nodes.clustered
      ? `cluster of ${nodes.answered} node${nodes.answered === 1 ? '' : 's'}`
      : 'one process';
  }

  // -- the trace -------------------------------------------------------------------------

  async function trace(event) {
    event.preventDefault();
    const form = event.target;
    const offset = form.elements.offset.value.trim();
    const user = form.elements.user.value.trim();
    showError('trace-error', '');
    $('trace-result').replaceChildren(el('p', 'tracing…', 'hint'));
    try {
      const query = new URLSearchParams({ offset, user });
      const answer = await rest('GET', `/stats/realtime/trace?${query}`);
      showTrace(answer.data);
    } catch (error) {
      $('trace-result').replaceChildren();
      showError('trace-error', error.message);
    }
  }

  function showTrace(data) {
    const result = $('trace-result');
    const entry = data.entry || {};
    const parts = [];
    parts.push(el('p', `Entry ${entry.offset}: ${entry.action} of ${entry.collection} ${entry.key}` +
      ` at ${entry.time || '?'}` + (data.events?.length ? ` → ${data.events.join(', ')}` : ' (no event)'), 'trace-entry'));
    const sockets = data.sockets || [];
    if (!sockets.length) {
      parts.push(el('p', 'This user had no socket connected from the commit until now (that the nodes remember).', 'outcome-none'));
    }
    for (const s of sockets) {
      const card = el('article', undefined, 'trace-socket');
      const head = el('h3');
      head.append(el('span', s.outcome, `outcome outcome-${String(s.outcome).replace(/\s+/g, '-')}`));
      head.append(el('span', ` socket ${s.sid} on node ${s.node} (${s.transport || '?'})`));
      card.append(head);
      const facts = el('dl');
      const add = (name, value) => {
        if (value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length)) return;
        facts.append(el('dt', name), el('dd', Array.isArray(value) ? value.join(', ') : value));
      };
      add('Reason', s.reason);
      add('Fields cut', s.fieldsCut);
      if (s.permission) {
        const p = s.permission;
        add('Permission', `${p.id || ''} (role ${p.role}, ${p.collection})` +
          (p.conditions ? ` conditions ${JSON.stringify(p.conditions)}` : '') +
          (p.fields ? ` fields ${JSON.stringify(p.fields)}` : ''));
      }
      add('Writer hidden', s.writerHidden ? 'yes (userId sent as null)' : '');
      add('Role then', s.role);
      add('Rooms then', s.rooms);
      add('Connected', `${s.connectedAt || '?'}${s.disconnectedAt ? ` → ${s.disconnectedAt} (${s.disconnectReason || ''})` : ' (still connected)'}`);
      card.append(facts);
      parts.push(card);
    }
    const nodes = data.nodes || {};
    if (nodes.clustered) parts.push(el('p', `${nodes.answered} node(s) answered.`, 'hint'));
    if (data.note) parts.push(el('p', typeof data.note === 'string' ? data.note : JSON.stringify(data.note), 'hint'));
    result.replaceChildren(...parts);
  }

  // -- logging in and out -------------------------------------------------------------------

  function start(signedIn) {
    if (signedIn.user?.role !== ADMIN_ROLE) {
      // Whatever the page showed, the server would refuse a non-administrator
      // everything; say so, and keep nothing.
      showLogin('administrators only: this account cannot use the inspector');
      logout(signedIn.token);
      return;
    }
    session = { token: signedIn.token, user: signedIn.user };
    $('me').textContent = `${session.user.email} (${session.user.role})`;
    $('login-view').hidden = true;
    $('inspector-view').hidden = false;
    connect(session.token);
  }

  function showLogin(message) {
    if (socket) socket.disconnect();
    socket = null;
    session = null;
    tailShown.clear();
    for (const id of ['sockets', 'tail']) $(id).tBodies[0].replaceChildren();
    $('trace-result').replaceChildren();
    $('inspector-view').hidden = true;
    $('login-view').hidden = false;
    setStatus('idle', 'not connected');
    showError('login-error', message);
  }

  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    showError('login-error', '');
    try {
      const signedIn = await rest('POST', '/auth/login', {
        email: form.elements.email.value,
        password: form.elements.password.value,
      });
      form.elements.password.value = '';
      start(signedIn);
    } catch (error) {
      showError('login-error', error.message);
    }
  });

  function logout(token) {
    if (!token) return;
    fetch('/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }

  $('logout').addEventListener('click', () => {
    const token = session?.token;
    showLogin('');
    logout(token);
  });

  $('trace-form').addEventListener('submit', trace);
})();
