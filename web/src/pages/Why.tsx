import {
  type ActionExplanation,
  type CesqlStep,
  type EventExplanation,
  type FilterClause,
  get,
  type TriggerExplanation,
} from '../api';
import { Badge, ErrorNote, useLoad } from '../components';

/** The "Why?" panel of an event: each trigger, the clause that failed, whom each action notifies. */
export function WhyPanel({ seq, version }: { seq: number; version: string }) {
  // Loaded again when the event is routed or a delivery moves on (the page polls for those).
  const { data, error } = useLoad(
    (signal) => get<EventExplanation>(`/api/events/by-seq/${seq}/explain`, signal),
    [seq, version],
  );
  return (
    <section class="why" data-testid="why">
      <h2>Why?</h2>
      <ErrorNote error={error} />
      {!data ? (
        !error && <p>Loading…</p>
      ) : (
        <>
          <p class="muted">{data.note}</p>
          {data.configChanges.length > 0 && (
            <ul class="warn" data-testid="config-changes">
              {data.configChanges.map((c) => (
                <li key={c}>{c}</li>
              ))}
            </ul>
          )}
          {data.triggers.length === 0 && <p>No triggers are configured: the event goes nowhere.</p>}
          {data.triggers.length > 0 && data.matched.length === 0 && (
            <p data-testid="why-summary">No trigger matches this event, so it notifies nobody.</p>
          )}
          {data.triggers.map((t) => (
            <Trigger key={t.trigger} trigger={t} />
          ))}
          {data.otherDeliveries.length > 0 && (
            <>
              <h3>Deliveries the current config does not plan</h3>
              <ul>
                {data.otherDeliveries.map((d) => (
                  <li key={d.id}>
                    delivery {d.id}: {d.trigger} → {d.recipient ?? '(no recipient)'}: {d.summary}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}

function Trigger({ trigger: t }: { trigger: TriggerExplanation }) {
  return (
    <article class="card" data-testid="why-trigger" data-matched={String(t.matched)}>
      <header>
        <strong>{t.trigger}</strong>
        <Badge kind={t.matched ? 'good' : 'muted'}>{t.matched ? 'matched' : 'did not match'}</Badge>
        {t.description && <span class="muted">{t.description}</span>}
      </header>
      {!t.matched && <Clause clause={t.filter} />}
      {t.actions.map((a) => (
        <Action key={a.index} action={a} />
      ))}
    </article>
  );
}

function Clause({ clause }: { clause: FilterClause }) {
  let decisive = clause;
  while (decisive.because?.length === 1) decisive = decisive.because[0]!;
  if (decisive.because && decisive.because.length > 1) {
    return (
      <div>
        <p class="mono break">{decisive.path}: none matched</p>
        <ul>
          {decisive.because.map((c) => (
            <li key={c.path}>
              <Clause clause={c} />
            </li>
          ))}
        </ul>
      </div>
    );
  }
  return (
    <div>
      <p class="mono break" data-testid="why-clause">
        {decisive.message}
      </p>
      {decisive.sql?.because && <Steps steps={decisive.sql.because} />}
      {decisive.errors?.map((e) => (
        <p class="error" key={e}>
          {e}
        </p>
      ))}
    </div>
  );
}

function Steps({ steps }: { steps: CesqlStep[] }) {
  return (
    <ul class="mono">
      {steps.map((s, i) => (
        <li key={i}>
          {s.message}
          {s.because && s.because.length > 0 && <Steps steps={s.because} />}
        </li>
      ))}
    </ul>
  );
}

function Action({ action: a }: { action: ActionExplanation }) {
  const to =
    a.to.kind === 'subscribersOf'
      ? `subscribers of ${a.to.key ?? '?'}${a.to.where ? `, where ${a.to.where}` : ''}`
      : a.to.kind === 'none'
        ? 'no recipient'
        : 'listed recipients';
  const excluded = (a.subscribers ?? []).filter((s) => !s.included);
  return (
    <div data-testid="why-action">
      <p>
        action {a.index} → <strong>{a.channel}</strong> <span class="muted">({to})</span>
      </p>
      {a.error && <p class="error">cannot plan its recipients: {a.error}</p>}
      <ul>
        {a.recipients.length === 0 && !a.error && <li>nobody to notify</li>}
        {a.recipients.map((r) => (
          <li key={r.recipient ?? ''}>
            <span class="mono">{r.recipient ?? '(no recipient)'}</span>:{' '}
            {r.delivery ? r.delivery.summary : 'no delivery recorded'}
          </li>
        ))}
        {excluded.map((s) => (
          <li key={s.id} class="muted" data-testid="why-excluded">
            left out: <span class="mono">{s.name ?? s.id}</span>: {s.reason}
          </li>
        ))}
        {a.moreSubscribers ? <li class="muted">… and {a.moreSubscribers} more subscribers</li> : null}
      </ul>
    </div>
  );
}
