import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { auth, get, type Status, Unauthorized } from './api';
import { ErrorNote } from './components';
import { ConfigPage } from './pages/Config';
import { DeadLettersPage } from './pages/DeadLetters';
import { EventDetailPage } from './pages/EventDetail';
import { HealthPage } from './pages/Health';
import { InboxPage } from './pages/Inbox';
import { LivePage } from './pages/Live';
import { SubscribersPage, ViewsPage } from './pages/Optional';
import { Link, useLocation } from './router';
import './style.css';

const NAV: [string, string][] = [
  ['/', 'Live events'],
  ['/dlq', 'Dead letters'],
  ['/inbox', 'Inbox'],
  ['/subscribers', 'Subscribers'],
  ['/views', 'Views'],
  ['/health', 'Health'],
  ['/config', 'Config'],
];

function Page({ path, search }: { path: string; search: URLSearchParams }) {
  const bySeq = path.match(/^\/events\/(\d+)$/);
  if (bySeq) return <EventDetailPage seq={Number(bySeq[1])} />;
  const byId = path.match(/^\/events\/id\/(.+)$/);
  if (byId)
    return <EventDetailPage id={decodeURIComponent(byId[1]!)} source={search.get('source') ?? undefined} />;
  switch (path) {
    case '/':
      return <LivePage />;
    case '/dlq':
      return <DeadLettersPage />;
    case '/inbox':
      return <InboxPage />;
    case '/subscribers':
      return <SubscribersPage />;
    case '/views':
      return <ViewsPage />;
    case '/health':
      return <HealthPage />;
    case '/config':
      return <ConfigPage />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            There is no page at {path}. <Link href="/">Live events</Link>
          </p>
        </section>
      );
  }
}

/** Shown when Herald has an admin token and this tab has none (or a wrong one). */
function Login({ onLogin }: { onLogin: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="login">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          auth.set(token.trim());
          try {
            await get<Status>('/api/status');
            onLogin();
          } catch (err) {
            auth.set(null);
            setError(err instanceof Unauthorized ? new Error('Herald refused this token.') : err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Herald</h1>
        <p>This Herald is protected by an admin token (HERALD_ADMIN_TOKEN).</p>
        <label>
          Admin token
          <input
            name="token"
            type="password"
            autoComplete="current-password"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            required
          />
        </label>
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <p class="muted small">The token is kept in this tab only and sent as an Authorization header.</p>
      </form>
    </main>
  );
}

function App() {
  const { path, search } = useLocation();
  const [state, setState] = useState<'checking' | 'login' | 'in'>('checking');
  const [startError, setStartError] = useState<unknown>(null);

  useEffect(() => auth.onRefused(() => setState('login')), []);
  useEffect(() => {
    get<Status>('/api/status').then(
      () => setState('in'),
      (err) => {
        if (err instanceof Unauthorized) setState('login');
        else {
          setStartError(err);
          setState('in');
        }
      },
    );
  }, []);

  if (state === 'checking') return <p class="loading">Loading…</p>;
  if (state === 'login') return <Login onLogin={() => setState('in')} />;
  const section = path.startsWith('/events/') ? '/' : path;
  return (
    <>
      <nav class="top">
        <Link href="/" class="brand">
          Herald
        </Link>
        {NAV.map(([href, label]) => (
          <Link
            key={href}
            href={href}
            class={section === href ? 'active' : ''}
            aria-current={section === href ? 'page' : undefined}
          >
            {label}
          </Link>
        ))}
        {auth.token && (
          <button
            type="button"
            class="link"
            onClick={() => {
              auth.set(null);
              setState('login');
            }}
          >
            Sign out
          </button>
        )}
      </nav>
      <main>
        <ErrorNote error={startError} />
        <Page path={path} search={search} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
