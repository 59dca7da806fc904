import { useState } from 'preact/hooks';
import { ApiError, get, query } from '../api';
import { AnyTable, ErrorNote, Json, NotEnabled, useLoad } from '../components';

type Answer = { enabled: false } | { enabled: true; body: unknown };

/** Areas that may not run in this Herald answer 404; that is "not enabled", not an error. */
async function optional(path: string, signal: AbortSignal): Promise<Answer> {
  try {
    return { enabled: true, body: await get<unknown>(path, signal) };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { enabled: false };
    throw err;
  }
}

/** The first list in an answer (`{subscribers: […]}`, `{views: […]}`), or the answer if it is one. */
function rowsOf(body: unknown): Record<string, unknown>[] | null {
  if (Array.isArray(body)) return body as Record<string, unknown>[];
  if (body && typeof body === 'object') {
    for (const v of Object.values(body)) if (Array.isArray(v)) return v as Record<string, unknown>[];
  }
  return null;
}

export function SubscribersPage() {
  const [search, setSearch] = useState('');
  const [q, setQ] = useState('');
  const { data, error } = useLoad((signal) => optional(`/api/subscribers${query({ q })}`, signal), [q]);
  return (
    <section>
      <h1>Subscribers</h1>
      <ErrorNote error={error} />
      {data && !data.enabled && (
        <NotEnabled what="Subscriptions are">
          <p>People, their subscriptions and their preferences appear here once subscriptions run.</p>
        </NotEnabled>
      )}
      {data?.enabled && (
        <>
          <SearchBox value={search} onInput={setSearch} onSubmit={() => setQ(search)} label="Find a person" />
          <Listing body={data.body} />
        </>
      )}
    </section>
  );
}

export function ViewsPage() {
  const [search, setSearch] = useState('');
  const [q, setQ] = useState('');
  const { data, error } = useLoad((signal) => optional(`/api/views${query({ q })}`, signal), [q]);
  return (
    <section>
      <h1>Views</h1>
      <ErrorNote error={error} />
      {data && !data.enabled && (
        <NotEnabled what="Views are">
          <p>Materialized views (projections) and their rows appear here once projections run.</p>
        </NotEnabled>
      )}
      {data?.enabled && (
        <>
          <SearchBox value={search} onInput={setSearch} onSubmit={() => setQ(search)} label="Search" />
          <Listing body={data.body} />
        </>
      )}
    </section>
  );
}

function SearchBox(props: {
  value: string;
  label: string;
  onInput: (v: string) => void;
  onSubmit: () => void;
}) {
  return (
    <form
      class="filters"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      <label class="wide-field">
        {props.label}
        <input value={props.value} onInput={(e) => props.onInput((e.target as HTMLInputElement).value)} />
      </label>
      <div class="actions">
        <button type="submit">Search</button>
      </div>
    </form>
  );
}

function Listing({ body }: { body: unknown }) {
  const rows = rowsOf(body);
  return rows ? <AnyTable rows={rows} /> : <Json value={body} />;
}
