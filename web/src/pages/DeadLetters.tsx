import { useState } from 'preact/hooks';
import {
  type DeadLetterFilterReplay,
  type DeadLetterPage,
  type DeadLetterReplay,
  type Delivery,
  get,
  post,
  query,
  type Status,
} from '../api';
import { ago, ErrorNote, Time, useLoad } from '../components';
import { Link } from '../router';
import { SourceDeadLetters } from './SourceDeadLetters';

interface DlqFilter {
  channel: string;
  trigger: string;
  eventType: string;
  reason: string;
}

/** Source kinds that set messages aside (the others answer their caller with the reason). */
const STREAM_KINDS = new Set(['nats', 'redis', 'postgres-cdc']);

const EMPTY: DlqFilter = { channel: '', trigger: '', eventType: '', reason: '' };

function describe(filter: DlqFilter): string {
  const parts = Object.entries(filter)
    .filter(([, v]) => v)
    .map(([k, v]) => (k === 'reason' ? `reason contains "${v}"` : `${k} = ${v}`));
  return parts.length ? parts.join(', ') : 'no filter: every dead letter';
}

export function DeadLettersPage() {
  const [draft, setDraft] = useState<DlqFilter>(EMPTY);
  const [filter, setFilter] = useState<DlqFilter>(EMPTY);
  const [pages, setPages] = useState<Delivery[]>([]);
  /** Cursor of the page after the loaded ones; undefined while only the first page is loaded. */
  const [moreCursor, setMoreCursor] = useState<number | null | undefined>(undefined);
  const [confirming, setConfirming] = useState(false);
  const [result, setResult] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const status = useLoad((signal) => get<Status>('/api/status', signal), []);
  const list = useLoad(
    async (signal) => {
      const page = await get<DeadLetterPage>(`/api/dlq${query({ limit: 100, ...filter })}`, signal);
      setPages([]);
      setMoreCursor(undefined);
      return page;
    },
    [filter],
  );
  const rows = [...(list.data?.deadLetters ?? []), ...pages];

  const loadMore = async () => {
    const before = moreCursor === undefined ? list.data?.next : moreCursor;
    if (before == null) return;
    try {
      const page = await get<DeadLetterPage>(`/api/dlq${query({ limit: 100, before, ...filter })}`);
      setPages((p) => [...p, ...page.deadLetters]);
      setMoreCursor(page.next);
    } catch (err) {
      setActionError(err);
    }
  };

  const replayOne = async (d: Delivery) => {
    setActionError(null);
    try {
      const { replayed } = await post<DeadLetterReplay>(`/api/dlq/${d.id}/replay`);
      setResult(
        replayed.length
          ? `Delivery ${d.id} (${d.channel}, ${d.eventType}) is queued again.`
          : `Delivery ${d.id} was no longer in the dead-letter queue.`,
      );
      list.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  const replayAll = async () => {
    setActionError(null);
    try {
      const body = Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
      const { replayed } = await post<DeadLetterFilterReplay>('/api/dlq/replay', body);
      setResult(`Replayed ${replayed} ${replayed === 1 ? 'delivery' : 'deliveries'} (${describe(filter)}).`);
      setConfirming(false);
      list.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  const channels = status.data?.channels.map((c) => c.name) ?? [];
  const triggers = status.data?.triggers.map((t) => t.name) ?? [];
  const more = (moreCursor === undefined ? list.data?.next : moreCursor) != null;
  const count = more ? `${rows.length}+` : String(rows.length);

  return (
    <section>
      <header class="page-head">
        <h1>Dead letters</h1>
        <span class="muted">{list.data ? `${list.data.total} in the queue` : ''}</span>
      </header>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setConfirming(false);
          setFilter({ ...draft });
        }}
      >
        <label>
          Channel
          <select
            name="channel"
            value={draft.channel}
            onChange={(e) => setDraft({ ...draft, channel: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {channels.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Trigger
          <select
            name="trigger"
            value={draft.trigger}
            onChange={(e) => setDraft({ ...draft, trigger: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {triggers.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Event type
          <input
            name="eventType"
            value={draft.eventType}
            onInput={(e) => setDraft({ ...draft, eventType: (e.target as HTMLInputElement).value })}
          />
        </label>
        <label>
          Reason contains
          <input
            name="reason"
            value={draft.reason}
            onInput={(e) => setDraft({ ...draft, reason: (e.target as HTMLInputElement).value })}
          />
        </label>
        <div class="actions">
          <button type="submit">Apply</button>
        </div>
      </form>
      <ErrorNote error={list.error ?? status.error} />
      <ErrorNote error={actionError} />
      {result && (
        <p class="result" role="status" data-testid="replay-result">
          {result}
        </p>
      )}
      {rows.length > 0 && !confirming && (
        <button type="button" class="danger" onClick={() => setConfirming(true)}>
          Replay all matching…
        </button>
      )}
      {confirming && (
        <div class="confirm" role="alertdialog" aria-label="Confirm replay">
          <p>
            Replay {count} dead {rows.length === 1 ? 'letter' : 'letters'} matching{' '}
            <em>{describe(filter)}</em>? Each is sent again from its first attempt.
          </p>
          <button type="button" class="danger" onClick={replayAll}>
            Yes, replay them
          </button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {list.data && rows.length === 0 && (
        <p class="empty">
          The dead-letter queue is empty{Object.values(filter).some(Boolean) ? ' for this filter' : ''}.
        </p>
      )}
      {rows.length > 0 && (
        <div class="scroll">
          <table data-testid="dead-letters">
            <thead>
              <tr>
                <th>Failed</th>
                <th>Channel</th>
                <th class="hide-narrow">Trigger</th>
                <th>Reason</th>
                <th>Event</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id} data-id={d.id}>
                  <td title={new Date(d.updatedAt).toISOString()}>
                    {ago(d.updatedAt)}
                    <div class="muted small">
                      <Time ms={d.updatedAt} />
                    </div>
                  </td>
                  <td>
                    {d.channel}
                    {d.recipient && <div class="muted small mono">{d.recipient}</div>}
                  </td>
                  <td class="hide-narrow">{d.trigger}</td>
                  <td class="break">
                    {d.lastError ?? ''}
                    <div class="muted small">
                      after {d.attempts} {d.attempts === 1 ? 'attempt' : 'attempts'}
                    </div>
                  </td>
                  <td>
                    <Link href={`/events/${d.eventSeq}`}>{d.eventType}</Link>
                  </td>
                  <td>
                    <button type="button" onClick={() => replayOne(d)}>
                      Replay
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {more && (
        <button type="button" class="secondary more" onClick={loadMore}>
          Load more
        </button>
      )}
      <SourceDeadLetters
        sources={status.data?.sources.filter((s) => STREAM_KINDS.has(s.kind)).map((s) => s.name) ?? []}
      />
    </section>
  );
}
