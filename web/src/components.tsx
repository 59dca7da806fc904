import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, Unauthorized } from './api';

export function ago(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return `in ${duration(-s * 1000)}`;
  if (s < 5) return 'just now';
  return `${duration(s * 1000)} ago`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = s / 60;
  if (m < 60) return `${Math.round(m)} min`;
  const h = m / 60;
  if (h < 48) return `${Math.round(h)} h`;
  return `${Math.round(h / 24)} d`;
}

export function time(ms: number): string {
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour12: false })
    : d.toLocaleString(undefined, { hour12: false });
}

/** A timestamp as local time, with the exact ISO time on hover. */
export function Time({ ms }: { ms: number }) {
  return (
    <time dateTime={new Date(ms).toISOString()} title={new Date(ms).toISOString()}>
      {time(ms)}
    </time>
  );
}

export function Badge({ kind, children }: { kind?: string; children: ComponentChildren }) {
  return <span class={`badge ${kind ?? ''}`}>{children}</span>;
}

export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error || error instanceof Unauthorized) return null;
  const message = error instanceof ApiError ? error.message : ((error as Error).message ?? String(error));
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** Loads on mount and when `deps` change; `every` ms re-polls while the page is visible. */
export function useLoad<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  every?: number,
): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const data = await loadRef.current(abort.signal);
        if (!abort.signal.aborted) setState({ data, error: null, loading: false });
      } catch (error) {
        if (!abort.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      }
      if (every && !abort.signal.aborted) timer = setTimeout(run, every);
    };
    setState((s) => ({ ...s, loading: true }));
    run();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick, every]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}

/** "Not enabled" for admin API areas this Herald does not run (404 on their endpoint). */
export function NotEnabled({ what, children }: { what: string; children?: ComponentChildren }) {
  return (
    <div class="empty" data-testid="not-enabled">
      <p>
        <strong>{what} not enabled</strong> in this Herald.
      </p>
      {children}
    </div>
  );
}

/** Rows of objects with whatever keys they have, for data whose shape this page does not know. */
export function AnyTable({ rows }: { rows: Record<string, unknown>[] }) {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))].slice(0, 8);
  if (rows.length === 0) return <p class="empty">Nothing yet.</p>;
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c}>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}>
              {columns.map((c) => (
                <td key={c}>{cell(r[c])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
