// The REST calls the feed makes, on the page's own origin (livebase, or Vite's proxy).

export const COLLECTION = 'messages';
export const CHANNEL = 'general'; // the channel the feed shows and posts to

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

export async function postMessage(token, text, authorId) {
  const body = { text, author_Id: authorId, channel: CHANNEL };
  const created = await rest('POST', `/items/${COLLECTION}`, { token, body });
  return created.data;
}

export function explain(error) {
  if (error.code === 'COLLECTION_NOT_FOUND') {
    return `The ${COLLECTION} collection does not exist yet: an administrator creates it (see the README).`;
  }
  if (error.status === 403) return `Your role may not do that on ${COLLECTION}: ${error.message}`;
  return error.message;
}
