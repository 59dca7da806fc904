import { useState } from 'preact/hooks';
import {
  get,
  post,
  query,
  type SourceDeadLetter,
  type SourceDeadLetterPage,
  type SourceDeadLetterReplay,
} from '../api';
import { ago, ErrorNote, Time, useLoad } from '../components';

/**
 * Messages stream sources set aside (failed mapping or validation, or an event ingest refused),
 * one source at a time: read the payload, fix the config, replay.
 */
export function SourceDeadLetters({ sources }: { sources: string[] }) {
  const [source, setSource] = useState('');
  const [result, setResult] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const chosen = source || sources[0] || '';
  const list = useLoad(
    (signal) =>
      chosen
        ? get<SourceDeadLetterPage>(`/api/dlq${query({ source: chosen, limit: 100 })}`, signal)
        : Promise.resolve<SourceDeadLetterPage>({ source: '', sourceDeadLetters: [], total: 0, next: null }),
    [chosen],
  );

  const replay = async (letter: SourceDeadLetter) => {
    setActionError(null);
    setResult(null);
    try {
      const { events } = await post<SourceDeadLetterReplay>(`/api/dlq/source/${letter.id}/replay`);
      setResult(
        `The message at ${letter.position} became ${events.length} ${events.length === 1 ? 'event' : 'events'}.`,
      );
      list.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  if (sources.length === 0) return null;
  const rows = list.data?.sourceDeadLetters ?? [];
  return (
    <section data-testid="source-dead-letters">
      <header class="page-head">
        <h2>Set aside by sources</h2>
        <span class="muted">{list.data ? `${list.data.total} from ${chosen}` : ''}</span>
      </header>
      <p class="muted">
        Messages a stream source could not turn into a stored event. The messages behind them kept flowing;
        fix the source's config, then replay.
      </p>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Source
          <select
            name="source"
            value={chosen}
            onChange={(e) => {
              setResult(null);
              setSource((e.target as HTMLSelectElement).value);
            }}
          >
            {sources.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={list.error} />
      <ErrorNote error={actionError} />
      {result && (
        <p class="result" role="status" data-testid="source-replay-result">
          {result}
        </p>
      )}
      {list.data && rows.length === 0 && <p class="empty">Nothing set aside from {chosen}.</p>}
      {rows.length > 0 && (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th>Set aside</th>
                <th>Position</th>
                <th>Reason</th>
                <th>Message</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((l) => (
                <tr key={l.id} data-id={l.id}>
                  <td title={new Date(l.createdAt).toISOString()}>
                    {ago(l.createdAt)}
                    <div class="muted small">
                      <Time ms={l.createdAt} />
                    </div>
                  </td>
                  <td class="mono">
                    {l.position}
                    {l.subject && <div class="muted small">{l.subject}</div>}
                  </td>
                  <td class="break">{l.reason}</td>
                  <td>
                    <details>
                      <summary>
                        {l.payloadBytes} bytes{l.payloadEncoding === 'base64' ? ', binary' : ''}
                        {l.truncated ? ', cut' : ''}
                      </summary>
                      {Object.keys(l.headers).length > 0 && (
                        <pre class="json">{JSON.stringify(l.headers, null, 2)}</pre>
                      )}
                      <pre class="json">{l.payload}</pre>
                    </details>
                  </td>
                  <td>
                    <button type="button" disabled={l.truncated} onClick={() => replay(l)}>
                      Replay
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
