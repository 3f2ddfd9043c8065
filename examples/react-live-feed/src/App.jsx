// Log in through REST, then show the live feed with the token that login answered
// (held in React state: nothing is assumed to be in localStorage).

import { useState } from 'react';

import { login, logout } from './api.js';
import LiveFeed from './LiveFeed.jsx';

const IDLE = { state: 'idle', text: 'not connected' };

export default function App() {
  const [session, setSession] = useState(null); // {token, user} from POST /auth/login
  const [status, setStatus] = useState(IDLE);
  const [loginMessage, setLoginMessage] = useState(null);

  function signOut(message = null) {
    setSession(null);
    setStatus(IDLE);
    setLoginMessage(message);
  }

  async function signOutEverywhere() {
    try {
      await logout(session.token);
    } catch {
      // the token may already be gone; leaving the feed is what matters
    }
    signOut();
  }

  return (
    <>
      <header>
        <h1>
          livebase <span>React live feed</span>
        </h1>
        <p id="status" className="status" data-state={status.state} role="status" aria-live="polite">
          {status.text}
        </p>
      </header>
      <main>
        {session ? (
          <section id="feed-view">
            <div className="whoami">
              Signed in as{' '}
              <strong id="me">
                {session.user.email} ({session.user.role})
              </strong>
              <button id="logout" type="button" className="link" onClick={signOutEverywhere}>
                Log out
              </button>
            </div>
            <LiveFeed
              session={session}
              onStatus={(state, text) => setStatus({ state, text })}
              onSignOut={signOut}
            />
          </section>
        ) : (
          <LoginForm message={loginMessage} onLogin={(signedIn) => setSession(signedIn)} />
        )}
      </main>
      <footer>
        Messages arrive over Socket.IO as a live query (<code>subscribe</code> to the{' '}
        <code>messages</code> of one channel, then <code>subscription.*</code> events) and are sent
        through the REST API (<code>POST /items/messages</code>).
      </footer>
    </>
  );
}

function LoginForm({ message, onLogin }) {
  const [error, setError] = useState(message);

  async function submit(event) {
    event.preventDefault();
    const fields = new FormData(event.currentTarget);
    try {
      const signedIn = await login(fields.get('email'), fields.get('password'));
      onLogin({ token: signedIn.token, user: signedIn.user });
    } catch (failure) {
      setError(failure.message);
    }
  }

  return (
    <section id="login-view">
      <h2>Log in</h2>
      <form id="login-form" onSubmit={submit}>
        <label>
          E-mail <input name="email" type="email" autoComplete="username" required />
        </label>
        <label>
          Password <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit">Log in</button>
      </form>
      <p className="hint">
        Any livebase account works: the administrator that <code>make run</code> created, or a user
        registered with <code>POST /auth/register</code>.
      </p>
      {error && (
        <p id="login-error" className="error">
          {error}
        </p>
      )}
    </section>
  );
}
