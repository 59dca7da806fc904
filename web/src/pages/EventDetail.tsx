import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { type Attempt, type Delivery, type EventDetail, get, post, query } from '../api';
import { ago, Badge, duration, ErrorNote, Json, Time, useLoad } from '../components';
import { Link } from '../router';
import { WhyPanel } from './Why';

const CONTEXT = ['id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema', 'specversion'];

/** `/events/42` (position in the log) or `/events/id/<id>?source=<source>` (from the inbox). */
export function EventDetailPage({ seq, id, source }: { seq?: number; id?: string; source?: string }) {
  const path =
    seq !== undefined
      ? `/api/events/by-seq/${seq}`
      : `/api/events/${encodeURIComponent(id ?? '')}${query({ source })}`;
  const [pending, setPending] = useState(false);
  // While anything is still on its way, keep the attempts current.
  const { data, error, reload } = useLoad(
    (signal) => get<EventDetail>(path, signal),
    [path],
    pending ? 1500 : 0,
  );
  const anyPending = data?.deliveries.some((d) => d.status === 'pending') ?? false;
  useEffect(() => setPending(anyPending), [anyPending]);

  if (!data) return <section>{error ? <ErrorNote error={error} /> : <p>Loading…</p>}</section>;
  const e = data.event;
  const extensions = Object.keys(e).filter(
    (k) => !CONTEXT.includes(k) && k !== 'data' && k !== 'data_base64',
  );
  return (
    <section>
      <p>
        <Link href="/">← Live events</Link>
      </p>
      <h1 class="break">{e.type}</h1>
      <ErrorNote error={error} />
      <div class="grid2">
        <div>
          <h2>Attributes</h2>
          <dl class="attrs" data-testid="attributes">
            {[...CONTEXT.filter((k) => e[k] !== undefined), ...extensions].map((k) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd class="mono break">{String(e[k])}</dd>
              </Fragment>
            ))}
            <dt>received</dt>
            <dd>
              <Time ms={data.receivedAt} /> (#{data.seq} in the log)
            </dd>
            <dt>routed</dt>
            <dd>{data.routedAt ? <Time ms={data.routedAt} /> : 'not yet'}</dd>
          </dl>
        </div>
        <div>
          <h2>Data</h2>
          {e.data_base64 !== undefined ? (
            <p class="mono break">base64: {e.data_base64}</p>
          ) : (
            <Json value={e.data ?? null} />
          )}
        </div>
      </div>
      <h2>Routing</h2>
      {!data.routing ? (
        <p>Not routed yet.</p>
      ) : (
        <>
          <p>
            Triggers matched:{' '}
            {data.routing.matched.length === 0 ? (
              <em>none</em>
            ) : (
              data.routing.matched.map((t) => <Badge key={t}>{t}</Badge>)
            )}
          </p>
          {data.routing.errors.map((err, i) => (
            <p class="error" key={i}>
              {err.trigger} ({err.dialect}, {err.kind}): {err.message}
            </p>
          ))}
          {data.routing.muted?.length ? (
            <div data-testid="muted">
              <p>Left out by their preferences:</p>
              <ul>
                {data.routing.muted.map((m, i) => (
                  <li key={i}>
                    {m.subscriber} ({m.trigger}, action {m.action}): {m.reason}
                  </li>
                ))}
              </ul>
              {data.routing.mutedMore ? <p class="muted">…and {data.routing.mutedMore} more</p> : null}
            </div>
          ) : null}
        </>
      )}
      <WhyPanel
        seq={data.seq}
        version={`${data.routedAt}:${data.deliveries.map((d) => `${d.status}${d.attempts}`).join()}`}
      />
      <h2>Deliveries ({data.deliveries.length})</h2>
      {data.deliveries.length === 0 && (
        <p class="empty">No deliveries: no trigger sent this event anywhere.</p>
      )}
      {data.deliveries.map((d) => (
        <DeliveryCard key={d.id} delivery={d} onReplayed={reload} />
      ))}
    </section>
  );
}

export function statusKind(status: string): string {
  if (status === 'suppressed') return 'muted';
  return status === 'delivered' ? 'good' : status === 'dead' ? 'bad' : 'warn';
}

function DeliveryCard({
  delivery: d,
  onReplayed,
}: {
  delivery: Delivery & { attemptLog: Attempt[] };
  onReplayed: () => void;
}) {
  const [replayError, setReplayError] = useState<unknown>(null);
  return (
    <article class="card delivery" data-testid="delivery" data-status={d.status}>
      <header>
        <strong>{d.channel}</strong>
        {d.recipient && <span class="mono"> → {d.recipient}</span>}
        <Badge kind={statusKind(d.status)}>{d.status}</Badge>
        <span class="muted">
          trigger {d.trigger} · delivery {d.id} · attempt {d.attempts} of {d.maxAttempts}
        </span>
      </header>
      {d.status === 'pending' && d.attempts > 0 && (
        <p>
          Next attempt <Time ms={d.nextAttemptAt} /> ({ago(d.nextAttemptAt)})
        </p>
      )}
      {d.status === 'pending' && d.attempts === 0 && d.nextAttemptAt > Date.now() && (
        <p>
          Delayed until <Time ms={d.nextAttemptAt} />
          {d.note && (
            <span class="muted" data-testid="delivery-note">
              {' '}
              · {d.note}
            </span>
          )}
        </p>
      )}
      {d.lastError && (
        <p class={d.status === 'dead' ? 'error' : d.status === 'suppressed' ? 'muted' : 'warn'}>
          {d.lastError}
        </p>
      )}
      {d.remoteId && <p class="muted mono">remote id {d.remoteId}</p>}
      {d.status === 'dead' && (
        <p>
          <button
            type="button"
            onClick={async () => {
              try {
                await post(`/api/dlq/${d.id}/replay`);
                onReplayed();
              } catch (err) {
                setReplayError(err);
              }
            }}
          >
            Replay
          </button>
          <ErrorNote error={replayError} />
        </p>
      )}
      {d.attemptLog.length > 0 && (
        <div class="scroll">
          <table class="attempts">
            <thead>
              <tr>
                <th>#</th>
                <th>Started</th>
                <th>Took</th>
                <th>Outcome</th>
                <th>Error</th>
                <th>Next retry</th>
              </tr>
            </thead>
            <tbody>
              {d.attemptLog.map((a) => (
                <tr key={`${a.number}-${a.startedAt}`}>
                  <td>{a.number}</td>
                  <td>
                    <Time ms={a.startedAt} />
                  </td>
                  <td>{duration(a.durationMs)}</td>
                  <td>
                    <Badge
                      kind={a.outcome === 'delivered' ? 'good' : a.outcome === 'failed' ? 'bad' : 'warn'}
                    >
                      {a.outcome}
                    </Badge>
                  </td>
                  <td class="break">{a.error ?? ''}</td>
                  <td>{a.nextAttemptAt ? <Time ms={a.nextAttemptAt} /> : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {d.rendered !== null && d.rendered !== undefined && (
        <details open>
          <summary>Rendered message</summary>
          <Json value={d.rendered} />
        </details>
      )}
    </article>
  );
}
