import { useEffect, useRef, useState } from 'preact/hooks';
import {
  type DeliveryStatus,
  type EventPage,
  get,
  type LiveDelivery,
  type LiveEvent,
  query,
  readStream,
  type StoredEvent,
  Unauthorized,
} from '../api';
import { Badge, ErrorNote, Time } from '../components';
import { Link } from '../router';

interface Filter {
  type: string;
  source: string;
  subject: string;
  sql: string;
}

interface Row extends StoredEvent {
  live?: boolean;
  /** Delivery outcomes seen on the stream, by delivery id. */
  outcomes?: Record<number, { channel: string; status: DeliveryStatus; error: string | null }>;
}

/** Rows kept on the page; older ones are a "Load older" click away. */
const MAX_ROWS = 500;
const EMPTY: Filter = { type: '', source: '', subject: '', sql: '' };

export function LivePage() {
  const [draft, setDraft] = useState<Filter>(EMPTY);
  const [filter, setFilter] = useState<Filter>(EMPTY);
  const [rows, setRows] = useState<Row[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [connection, setConnection] = useState<'connecting' | 'live' | 'reconnecting' | 'stopped'>(
    'connecting',
  );
  const [paused, setPaused] = useState(false);
  const [heldCount, setHeldCount] = useState(0);
  const held = useRef<Row[]>([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    const abort = new AbortController();
    let attempt = 0;
    const addEvent = (row: Row) => {
      if (pausedRef.current && !held.current.some((h) => h.seq === row.seq)) {
        held.current.unshift(row);
        setHeldCount(held.current.length);
        return;
      }
      // An event listed before it was routed gets its triggers when the stream reports it.
      setRows((rs) =>
        rs.some((r) => r.seq === row.seq)
          ? rs.map((r) => (r.seq === row.seq ? { ...r, routing: row.routing, routedAt: row.routedAt } : r))
          : [row, ...rs].slice(0, MAX_ROWS),
      );
    };
    const addDelivery = (d: LiveDelivery) => {
      const apply = (r: Row): Row =>
        r.seq === d.eventSeq
          ? {
              ...r,
              outcomes: { ...r.outcomes, [d.id]: { channel: d.channel, status: d.status, error: d.error } },
            }
          : r;
      held.current = held.current.map(apply);
      setRows((rs) => rs.map(apply));
    };
    const loadFirstPage = () =>
      get<EventPage>(`/api/events${query({ limit: 50, ...filter })}`, abort.signal).then(
        (page) => {
          setRows((rs) => {
            const seen = new Set(rs.map((r) => r.seq));
            return [...rs, ...page.events.filter((e) => !seen.has(e.seq))]
              .sort((a, b) => b.seq - a.seq)
              .slice(0, MAX_ROWS);
          });
          setNext((n) => n ?? page.next);
        },
        (err) => {
          if (!abort.signal.aborted) setError(err);
        },
      );
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          // Subscribe first, then read the newest page of the log, so nothing falls between the two.
          await readStream(
            `/api/stream${query({ ...filter })}`,
            (m) => {
              if (m.event === 'ready') {
                attempt = 0;
                setConnection('live');
                setError(null);
                loadFirstPage();
              } else if (m.event === 'event') addEvent({ ...(m.data as LiveEvent), live: true });
              else if (m.event === 'delivery') addDelivery(m.data as LiveDelivery);
            },
            abort.signal,
          );
        } catch (err) {
          if (abort.signal.aborted || err instanceof Unauthorized) return;
          setError(err);
          // A filter Herald refuses will not get better by retrying.
          if ((err as { status?: number }).status === 400) {
            setConnection('stopped');
            return;
          }
        }
        if (abort.signal.aborted) return;
        setConnection('reconnecting');
        attempt++;
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
      }
    };
    setConnection('connecting');
    setRows([]);
    setNext(null);
    run();
    return () => abort.abort();
  }, [filter]);

  const loadOlder = async () => {
    if (next === null) return;
    try {
      const page = await get<EventPage>(`/api/events${query({ limit: 50, before: next, ...filter })}`);
      setRows((rs) => {
        const seen = new Set(rs.map((r) => r.seq));
        return [...rs, ...page.events.filter((e) => !seen.has(e.seq))];
      });
      setNext(page.next);
    } catch (err) {
      setError(err);
    }
  };

  const resume = () => {
    const heldRows = held.current;
    held.current = [];
    setHeldCount(0);
    setRows((rs) => [...heldRows.filter((h) => !rs.some((r) => r.seq === h.seq)), ...rs].slice(0, MAX_ROWS));
    setPaused(false);
  };

  const field = (name: keyof Filter, label: string, placeholder: string) => (
    <label>
      {label}
      <input
        name={name}
        value={draft[name]}
        placeholder={placeholder}
        onInput={(e) => setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value })}
      />
    </label>
  );

  return (
    <section>
      <header class="page-head">
        <h1>Live events</h1>
        <span class={`conn ${connection}`} data-testid="connection">
          {connection === 'live' ? '● live' : connection === 'stopped' ? 'not connected' : connection}
        </span>
        <button type="button" onClick={() => (paused ? resume() : setPaused(true))}>
          {paused ? `Resume (${heldCount} new)` : 'Pause'}
        </button>
      </header>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft });
        }}
      >
        {field('type', 'Type', 'any type')}
        {field('source', 'Source', 'any source')}
        {field('subject', 'Subject', 'any subject')}
        <label class="wide-field">
          CESQL
          <input
            name="sql"
            value={draft.sql}
            placeholder="e.g. subject LIKE 'sal%' AND type <> 'test'"
            onInput={(e) => setDraft({ ...draft, sql: (e.target as HTMLInputElement).value })}
          />
        </label>
        <div class="actions">
          <button type="submit">Apply</button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setDraft(EMPTY);
              setFilter(EMPTY);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorNote error={error} />
      {rows.length === 0 ? (
        <p class="empty">No events yet. POST one to /events or a source route and it appears here.</p>
      ) : (
        <div class="scroll">
          <table class="events" data-testid="events">
            <thead>
              <tr>
                <th>Received</th>
                <th>Type</th>
                <th class="hide-narrow">Source</th>
                <th>Subject</th>
                <th>Triggers matched</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <EventRow key={r.seq} row={r} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next !== null && (
        <button type="button" class="secondary more" onClick={loadOlder}>
          Load older
        </button>
      )}
    </section>
  );
}

function EventRow({ row }: { row: Row }) {
  const outcomes = Object.values(row.outcomes ?? {});
  return (
    <tr class={row.live ? 'fresh' : ''} data-seq={row.seq}>
      <td>
        <Link href={`/events/${row.seq}`}>
          <Time ms={row.receivedAt} />
        </Link>
      </td>
      <td>
        <Link href={`/events/${row.seq}`}>{row.event.type}</Link>
      </td>
      <td class="hide-narrow mono">{row.event.source}</td>
      <td>{row.event.subject ?? ''}</td>
      <td class="triggers">
        {row.routing === null ? (
          <Badge kind="muted">routing…</Badge>
        ) : row.routing.matched.length === 0 ? (
          <Badge kind="muted">none</Badge>
        ) : (
          row.routing.matched.map((t) => <Badge key={t}>{t}</Badge>)
        )}
        {row.routing?.errors.length ? (
          <Badge kind="bad">{row.routing.errors.length} filter errors</Badge>
        ) : null}
        {outcomes.map((o, i) => (
          <Badge key={i} kind={o.status === 'delivered' ? 'good' : o.status === 'dead' ? 'bad' : 'warn'}>
            {o.channel}: {o.status}
          </Badge>
        ))}
      </td>
    </tr>
  );
}
