import { get, type Health } from '../api';
import { ago, Badge, duration, ErrorNote, useLoad } from '../components';

export function HealthPage() {
  const { data, error } = useLoad((signal) => get<Health>('/api/health', signal), [], 2000);
  if (!data) return <section>{error ? <ErrorNote error={error} /> : <p>Loading…</p>}</section>;
  const lag = data.lagMs ?? 0;
  const lagKind = data.lagMs === null ? undefined : lag > 60_000 ? 'bad' : lag > 5_000 ? 'warn' : 'good';
  const unknown = '–';
  return (
    <section>
      <header class="page-head">
        <h1>Health</h1>
        <Badge kind={data.state === 'running' ? 'good' : 'bad'}>{data.state}</Badge>
        <span class="muted" data-testid="parts">
          {data.store.kind} store · {data.bus.kind} bus · up {duration(data.uptimeMs)}
        </span>
      </header>
      <ErrorNote error={error} />
      {!data.store.ok && (
        <p class="error" role="alert">
          The {data.store.kind} store does not answer: {data.store.detail}
        </p>
      )}
      {!data.bus.ok && (
        <p class="error" role="alert">
          The {data.bus.kind} bus is {data.bus.state}: {data.bus.detail}
        </p>
      )}
      <div class="stats" data-testid="stats">
        <Stat label="events / min" value={data.eventsLastMinute} />
        <Stat label="pending deliveries" value={data.deliveries?.pending ?? unknown} />
        <Stat label="in flight" value={data.inFlight} />
        <Stat label="delivered" value={data.deliveries?.delivered ?? unknown} />
        <Stat
          label="dead letters"
          value={data.deadLetters ?? unknown}
          kind={data.deadLetters ? 'bad' : undefined}
        />
        <Stat
          label="lag (oldest pending)"
          value={data.lagMs === null ? unknown : lag ? duration(lag) : '0'}
          kind={lagKind}
        />
      </div>

      <h2>Channels</h2>
      <div class="scroll">
        <table data-testid="channels">
          <thead>
            <tr>
              <th>Channel</th>
              <th>Status</th>
              <th>Last minute</th>
              <th class="hide-narrow">Since start</th>
              <th>Last attempt</th>
            </tr>
          </thead>
          <tbody>
            {data.channels.map((c) => (
              <tr key={c.name}>
                <td>
                  {c.name} <span class="muted">({c.kind})</span>
                  {c.fallback && <div class="muted small">{c.fallback}</div>}
                </td>
                <td>
                  <Badge kind={c.status === 'ok' ? 'good' : c.status === 'failing' ? 'bad' : 'muted'}>
                    {c.status}
                  </Badge>
                </td>
                <td>
                  {c.lastMinute.delivered} delivered
                  {c.lastMinute.retry > 0 && `, ${c.lastMinute.retry} retried`}
                  {c.lastMinute.failed > 0 && `, ${c.lastMinute.failed} failed`}
                </td>
                <td class="hide-narrow">
                  {c.total.delivered} / {c.total.retry} / {c.total.failed}
                </td>
                <td class="break">
                  {c.lastAttempt ? (
                    <>
                      {c.lastAttempt.outcome} {ago(c.lastAttempt.at)}
                      {c.lastAttempt.error && <div class="small error-text">{c.lastAttempt.error}</div>}
                    </>
                  ) : (
                    <span class="muted">none yet</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Sources</h2>
      <div class="scroll">
        <table data-testid="sources">
          <thead>
            <tr>
              <th>Source</th>
              <th>Kind</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {data.sources.map((s) => (
              <tr key={s.name}>
                <td>{s.name}</td>
                <td>{s.kind}</td>
                <td>
                  <Badge kind={s.status === 'running' ? 'good' : 'bad'}>{s.status}</Badge>
                  {s.detail && <div class="muted small">{s.detail}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Events by CloudEvent source</h2>
      {data.eventSources.length === 0 ? (
        <p class="empty">No events since Herald started.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th>source</th>
                <th>last minute</th>
                <th>since start</th>
                <th>last event</th>
              </tr>
            </thead>
            <tbody>
              {data.eventSources.map((s) => (
                <tr key={s.source}>
                  <td class="mono break">{s.source}</td>
                  <td>{s.lastMinute}</td>
                  <td>{s.total}</td>
                  <td>{s.lastEventAt ? ago(s.lastEventAt) : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="muted small">
        Counters since this process started; Prometheus metrics are at <a href="/metrics">/metrics</a>.
      </p>
    </section>
  );
}

function Stat({ label, value, kind }: { label: string; value: number | string; kind?: string }) {
  return (
    <div class={`stat ${kind ?? ''}`}>
      <div class="value">{value}</div>
      <div class="label">{label}</div>
    </div>
  );
}
