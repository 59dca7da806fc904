import { useState } from 'preact/hooks';
import { get, type InboxMessagePage, query, type Status } from '../api';
import { ErrorNote, Json, Time, useLoad } from '../components';
import { Link } from '../router';

/** What the inbox channel kept: the messages Slack or email would have received without credentials. */
export function InboxPage() {
  const [channel, setChannel] = useState('');
  const [older, setOlder] = useState<InboxMessagePage | null>(null);
  const status = useLoad((signal) => get<Status>('/api/status', signal), []);
  const list = useLoad(
    (signal) => {
      setOlder(null);
      return get<InboxMessagePage>(`/api/inbox${query({ limit: 50, channel })}`, signal);
    },
    [channel],
  );
  const messages = [...(list.data?.messages ?? []), ...(older?.messages ?? [])];
  const next = older ? older.next : list.data?.next;
  const inboxChannels = status.data?.channels.filter((c) => c.kind === 'inbox') ?? [];

  return (
    <section>
      <header class="page-head">
        <h1>Inbox</h1>
        <button type="button" class="secondary" onClick={list.reload}>
          Refresh
        </button>
      </header>
      {inboxChannels.some((c) => c.fallback) && (
        <p class="muted">
          {inboxChannels
            .filter((c) => c.fallback)
            .map((c) => `${c.name}: ${c.fallback}`)
            .join('; ')}
        </p>
      )}
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Channel
          <select value={channel} onChange={(e) => setChannel((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {inboxChannels.map((c) => (
              <option key={c.name}>{c.name}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={list.error} />
      {list.data && messages.length === 0 && <p class="empty">No messages in the inbox.</p>}
      <div data-testid="inbox">
        {messages.map((m) => (
          <article class="card message" key={m.id}>
            <header>
              <strong>{m.channel}</strong>
              {m.recipient && <span class="mono"> → {m.recipient}</span>}
              <span class="muted">
                <Time ms={m.createdAt} /> ·{' '}
                <Link href={`/events/id/${encodeURIComponent(m.eventId)}${query({ source: m.eventSource })}`}>
                  event
                </Link>
              </span>
            </header>
            <Message message={m.message} />
          </article>
        ))}
      </div>
      {next != null && (
        <button
          type="button"
          class="secondary more"
          onClick={async () => {
            const page = await get<InboxMessagePage>(
              `/api/inbox${query({ limit: 50, before: next, channel })}`,
            );
            setOlder((o) => ({ messages: [...(o?.messages ?? []), ...page.messages], next: page.next }));
          }}
        >
          Load older
        </button>
      )}
    </section>
  );
}

function Message({ message }: { message: unknown }) {
  if (message && typeof message === 'object') {
    const { subject, text, ...rest } = message as Record<string, unknown>;
    return (
      <>
        {typeof subject === 'string' && <p class="subject">{subject}</p>}
        {typeof text === 'string' && <p class="text">{text}</p>}
        {Object.keys(rest).length > 0 && (
          <details>
            <summary>More fields</summary>
            <Json value={rest} />
          </details>
        )}
      </>
    );
  }
  return <Json value={message} />;
}
