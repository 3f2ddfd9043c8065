// The REST calls the feed makes, on the page's own origin (livebase, or Vite's proxy).

export const COLLECTION = 'messages';
// A message's own fields (its `author_Id` among them) and its author's first name:
// `author` is a relation to `users`, answered as {id, firstName}, or null.
const WITH_AUTHOR = '*,author.firstName';

export async function rest(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
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

/** POST /auth/login → {token, user, role, expiresAt} */
export const login = (email, password) => rest('POST', '/auth/login', { body: { email, password } });

export const logout = (token) => rest('POST', '/auth/logout', { token });

/** The latest messages with their authors' names, oldest first. */
export async function recentMessages(token, limit = 50) {
  const query = new URLSearchParams({ sort: '["-createdAt"]', limit: String(limit), fields: WITH_AUTHOR });
  const page = await rest('GET', `/items/${COLLECTION}?${query}`, { token });
  return page.data.reverse();
}

/** The first name of a message's author, or null (no author, or not readable). */
export async function authorName(token, messageId) {
  const query = new URLSearchParams({ fields: 'author.firstName' });
  const found = await rest('GET', `/items/${COLLECTION}/${encodeURIComponent(messageId)}?${query}`, { token });
  return found.data.author?.firstName ?? null;
}

export async function postMessage(token, text, authorId) {
  const created = await rest('POST', `/items/${COLLECTION}`, { token, body: { text, author_Id: authorId } });
  return created.data;
}

/** Add or replace items by id, keeping creation order whatever order they came in. */
export function merge(messages, items) {
  const byId = new Map(messages.map((item) => [item.id, item]));
  for (const item of items) byId.set(item.id, item);
  return [...byId.values()].sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
}

export function explain(error) {
  if (error.code === 'COLLECTION_NOT_FOUND') {
    return `The ${COLLECTION} collection does not exist yet: an administrator creates it (see the README).`;
  }
  if (error.status === 403) return `Your role may not do that on ${COLLECTION}: ${error.message}`;
  return error.message;
}
