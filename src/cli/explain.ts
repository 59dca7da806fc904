import type { Command } from 'commander';
import { HeraldApiError } from '../client/index.js';
import type { CesqlStep, EventExplanation, FilterClause, TriggerExplanation } from '../server/api-types.js';
import { cliClient } from './client.js';

/** `herald explain ID [--recipient R] [--json]`: why an event did or did not notify. */
export function registerExplainCommand(program: Command): void {
  program
    .command('explain')
    .description(
      'Explain why an event did or did not notify: every trigger, the clause that failed, whom each action plans to notify and what became of each delivery (evaluated against the current config).',
    )
    .argument('<id>', 'event id')
    .option('--source <source>', 'event source, when several events share the id')
    .option(
      '-r, --recipient <recipient>',
      'only what concerns this recipient (an address, a subscriber id or name)',
    )
    .option('--json', 'print the answer as JSON')
    .option('-u, --url <url>', 'Herald base URL', process.env.HERALD_URL ?? 'http://127.0.0.1:8080')
    .action(
      async (id: string, opts: { source?: string; recipient?: string; json?: boolean; url: string }) => {
        let explanation: EventExplanation;
        try {
          explanation = await cliClient(opts.url).events.explain(id, {
            source: opts.source,
            recipient: opts.recipient,
          });
        } catch (err) {
          console.error(
            `herald explain: ${err instanceof HeraldApiError ? err.body.error : (err as Error).message}`,
          );
          process.exit(1);
        }
        console.log(opts.json ? JSON.stringify(explanation, null, 2) : formatExplanation(explanation));
      },
    );
}

/** The explanation as lines a person reads top to bottom. */
export function formatExplanation(x: EventExplanation): string {
  const lines: string[] = [];
  const e = x.event;
  lines.push(
    `Event ${e.id} (${e.type}${e.subject !== null ? `, subject ${e.subject}` : ''}) from ${e.source}, #${e.seq} in the log`,
  );
  lines.push(x.note);
  if (x.configChanges.length > 0) {
    lines.push('Since it was routed, the config changed:');
    for (const c of x.configChanges) lines.push(`  - ${c}`);
  }
  if (x.recipient) {
    lines.push(`For ${x.recipient.name}:`);
    for (const v of x.recipient.verdict) lines.push(`  - ${v}`);
  }
  if (x.triggers.length === 0) lines.push('No triggers are configured: the event goes nowhere.');
  else if (x.matched.length === 0) lines.push('No trigger matches this event.');
  lines.push('');
  for (const t of x.triggers) lines.push(...formatTrigger(t));
  if (x.otherDeliveries.length > 0) {
    lines.push('Deliveries the current config does not plan:');
    for (const d of x.otherDeliveries)
      lines.push(
        `  delivery ${d.id}: trigger ${d.trigger} → ${d.recipient ?? '(no recipient)'} on ${d.channel}: ${d.summary}`,
      );
  }
  return lines.join('\n').trimEnd();
}

function formatTrigger(t: TriggerExplanation): string[] {
  const lines = [`${t.matched ? '✓' : '✗'} ${t.trigger}: ${t.matched ? 'matched' : 'did not match'}`];
  if (!t.matched) lines.push(...formatClause(t.filter, '    '));
  for (const a of t.actions) {
    const to =
      a.to.kind === 'subscribersOf'
        ? `subscribers of ${a.to.key ?? '?'}${a.to.where ? `, where ${a.to.where}` : ''}`
        : a.to.kind === 'none'
          ? 'no recipient'
          : 'listed recipients';
    lines.push(`    action ${a.index} → ${a.channel} (${to})`);
    if (a.error) lines.push(`      cannot plan its recipients: ${a.error}`);
    if (a.recipients.length === 0 && !a.error) lines.push('      nobody to notify');
    for (const r of a.recipients) {
      const who = r.recipient ?? '(no recipient)';
      lines.push(`      ${who}: ${r.delivery ? r.delivery.summary : 'no delivery recorded'}`);
    }
    for (const s of a.subscribers ?? [])
      if (!s.included) lines.push(`      left out: ${s.id}${s.name ? ` (${s.name})` : ''}: ${s.reason}`);
    if (a.moreSubscribers) lines.push(`      … and ${a.moreSubscribers} more subscribers`);
  }
  return lines;
}

function formatClause(clause: FilterClause, indent: string): string[] {
  const lines: string[] = [];
  let decisive = clause;
  while (decisive.because?.length === 1) decisive = decisive.because[0]!;
  if (decisive.because && decisive.because.length > 1) {
    lines.push(`${indent}${decisive.path}: none matched`);
    for (const c of decisive.because) lines.push(...formatClause(c, `${indent}  `));
  } else {
    lines.push(`${indent}${decisive.message}`);
    if (decisive.sql?.because)
      for (const s of decisive.sql.because) lines.push(...formatStep(s, `${indent}  `));
  }
  for (const err of decisive.errors ?? []) lines.push(`${indent}  error: ${err}`);
  return lines;
}

function formatStep(step: CesqlStep, indent: string): string[] {
  const lines = [`${indent}${step.message}`];
  if (step.because && step.because.length > 0)
    for (const s of step.because) lines.push(...formatStep(s, `${indent}  `));
  return lines;
}
