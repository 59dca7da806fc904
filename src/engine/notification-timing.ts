import { createHash } from 'node:crypto';
import type { CloudEvent } from '../events/types.js';
import type { NotificationRules } from './model.js';
import { heldReason, ianaZone, MAX_ZONE_LENGTH, quietUntil } from './quiet-hours.js';
import { type PlannedRecipient, recipientScope } from './recipient-scope.js';
import type { DeliveryGates } from './store.js';

/** Longer rendered keys are stored as a digest, so a key never grows a row without bound. */
const MAX_KEY_LENGTH = 200;

/** The longest `delay.until` may reach ahead of routing, like a duration. */
const MAX_DELAY_MS = 365 * 86_400_000;

export interface NotificationTiming {
  /** Epoch ms of the first attempt. */
  notBefore: number;
  gates?: DeliveryGates;
  /** Why the first attempt waits (quiet hours): `held until 07:00 Europe/Berlin`. */
  note?: string;
  /** What went wrong without stopping the delivery (for the event's routing errors). */
  warnings?: string[];
}

/**
 * When a delivery is first due and its rendered keys (`gates`), from the action's rules. Throws,
 * naming the key, when a template does not render or `until` is not a time.
 */
export function notificationTiming(
  rules: NotificationRules,
  trigger: string,
  action: number,
  event: CloudEvent,
  recipient: PlannedRecipient,
  now: number,
): NotificationTiming {
  const scope = { event, recipient: recipientScope(recipient) };
  const render = (name: string, template: { render(s: Record<string, unknown>): string }): string => {
    let text: string;
    try {
      text = template.render(scope);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
    // PostgreSQL text cannot hold NUL; a key is compared, never shown raw, so stand it in.
    text = text.replaceAll('\u0000', '\uFFFD');
    return text.length > MAX_KEY_LENGTH
      ? `${text.slice(0, 40)}…sha256:${createHash('sha256').update(text).digest('base64url')}`
      : text;
  };
  let gates: DeliveryGates | undefined;
  if (rules.dedupe || rules.replace || rules.throttle || rules.digest) {
    gates = { scope: `${trigger}#${action}`, eventId: event.id, at: now };
    if (rules.dedupe)
      gates.dedupe = { key: render('dedupe.key', rules.dedupe.key), windowMs: rules.dedupe.windowMs };
    if (rules.replace) gates.replace = { key: render('replace.key', rules.replace.key) };
    if (rules.throttle)
      gates.throttle = {
        key: render('throttle.key', rules.throttle.key),
        limit: rules.throttle.limit,
        perMs: rules.throttle.perMs,
      };
    if (rules.digest)
      gates.digest = {
        key: render('digest.key', rules.digest.key),
        windowMs: rules.digest.windowMs,
        max: rules.digest.max,
      };
  }
  let notBefore = now;
  if (rules.delay && 'ms' in rules.delay) notBefore = now + rules.delay.ms;
  else if (rules.delay) {
    const text = render('delay.until', rules.delay.until).trim();
    const at = parseInstant(text);
    if (at === null)
      throw new Error(
        `delay.until rendered "${text.slice(0, 60)}", which is not an ISO 8601 time or epoch milliseconds`,
      );
    if (at - now > MAX_DELAY_MS) throw new Error(`delay.until rendered "${text}", more than 365d ahead`);
    // A time already past sends now.
    notBefore = Math.max(now, at);
  }
  // A delivery that opens a digest is sent when its window ends; the delay shifts the window.
  if (gates?.digest) notBefore += gates.digest.windowMs;
  const timing: NotificationTiming = gates ? { notBefore, gates } : { notBefore };
  // Last: whatever made the delivery due when it is, quiet hours may hold it longer.
  if (rules.quietHours) {
    const { timezone, ...period } = rules.quietHours;
    let zone = 'UTC';
    if (timezone) {
      // A zone that cannot be had holds by UTC rather than not at all, and the routing record says so.
      let text: string | null = null;
      try {
        text = timezone.render(scope).trim();
      } catch (err) {
        timing.warnings = [`quietHours.timezone: ${(err as Error).message}; quiet hours were read in UTC`];
      }
      // Rendered empty (no preference and no default): the documented default.
      const known = text === null || text === '' ? 'UTC' : ianaZone(text);
      if (known) zone = known;
      else if (text !== null)
        timing.warnings = [
          `quietHours.timezone rendered ${JSON.stringify(text.length > MAX_ZONE_LENGTH ? `${text.slice(0, MAX_ZONE_LENGTH)}…` : text)}, which is not an IANA time zone; quiet hours were read in UTC`,
        ];
    }
    // A digest this event fills is sent at once, unless that is inside quiet hours too.
    if (gates?.digest) {
      const fullAt = quietUntil(now, period, zone);
      if (fullAt !== now) gates.digest.dueWhenFull = fullAt;
    }
    const due = quietUntil(notBefore, period, zone);
    if (due !== notBefore) {
      timing.notBefore = due;
      timing.note = heldReason(due, now, zone);
    }
  }
  return timing;
}

/** An ISO 8601 date-time (with a zone or `Z`), or epoch milliseconds; null otherwise. */
export function parseInstant(text: string): number | null {
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}
