import { formatDuration } from '../engine/duration.js';
import type { NewDelivery } from './types.js';

/**
 * The decisions of notification keys (dedupe → replace → throttle → digest), shared by the stores. A store
 * runs them inside the transaction that stores the deliveries, over key rows it has read (and, on
 * PostgreSQL, locked), then writes back the rows and suppressions the ledger reports.
 */

export type KeyKind = 'dedupe' | 'replace' | 'throttle' | 'digest';

/** One row of `notification_keys`: what a key has let through so far. */
export interface KeyRow {
  /** Epoch ms of the first accepted occurrence of the current window. */
  windowStart: number;
  /** Deliveries accepted in the current window (throttle); events in the open digest (digest). */
  count: number;
  /** Idempotency key of the newest accepted delivery (replace), of the open digest (digest). */
  deliveryKey: string | null;
  /** Seq and id of that delivery's event: an older event never replaces a newer one. */
  eventSeq: number | null;
  eventId: string | null;
}

/** A stored delivery a replace key points at. */
export interface HeldDelivery {
  status: string;
  attempts: number;
  nextAttemptAt: number;
}

export interface KeyRef {
  scope: string;
  kind: KeyKind;
  key: string;
}

/** Dedupe, replace and digest are about one person's notifications, so their keys are per recipient. */
export function keysOf(d: NewDelivery): KeyRef[] {
  const g = d.gates;
  if (!g) return [];
  const perRecipient = JSON.stringify([g.scope, d.recipient]);
  const refs: KeyRef[] = [];
  if (g.dedupe) refs.push({ scope: perRecipient, kind: 'dedupe', key: g.dedupe.key });
  if (g.replace) refs.push({ scope: perRecipient, kind: 'replace', key: g.replace.key });
  if (g.throttle) refs.push({ scope: g.scope, kind: 'throttle', key: g.throttle.key });
  if (g.digest) refs.push({ scope: perRecipient, kind: 'digest', key: g.digest.key });
  return refs;
}

const refId = (r: KeyRef) => `${r.scope}\u0001${r.kind}\u0001${r.key}`;

export interface Decision {
  status: 'pending' | 'suppressed';
  reason: string | null;
  /** Set when a later delivery of the batch moved this one's first attempt (its digest filled up). */
  notBefore?: number;
}

/** An event a digest delivery carries: store it in the same transaction as the decision. */
export interface DigestMember {
  /** Idempotency key of the digest's delivery. */
  deliveryKey: string;
  eventSeq: number;
  /** The rendered digest key. */
  key: string;
}

interface PlannedHold extends HeldDelivery {
  decision: Decision;
}

export class KeyLedger {
  private readonly rows = new Map<string, { ref: KeyRef; row: KeyRow | null; dirty: boolean }>();
  private readonly held = new Map<string, HeldDelivery | PlannedHold | null>();
  /** Stored deliveries this batch replaced: set them `suppressed` with the reason. */
  readonly replacedStored: { idempotencyKey: string; eventSeq: number; reason: string }[] = [];
  /** Events the batch's digests collected, openers included: store them with the deliveries. */
  readonly digestMembers: DigestMember[] = [];
  /** Stored digest deliveries that filled up: make them due at `at` (if still waiting). */
  readonly dueStored: { idempotencyKey: string; eventSeq: number; at: number }[] = [];

  constructor(
    private readonly loadKey: (ref: KeyRef) => KeyRow | null,
    /** A stored delivery by its idempotency key and its event's seq (every key row names both). */
    private readonly loadHeld: (idempotencyKey: string, eventSeq: number) => HeldDelivery | null,
  ) {}

  /** Key rows changed by the decisions so far, to write back. */
  changedKeys(): { ref: KeyRef; row: KeyRow }[] {
    const out: { ref: KeyRef; row: KeyRow }[] = [];
    for (const entry of this.rows.values())
      if (entry.dirty && entry.row) out.push({ ref: entry.ref, row: entry.row });
    return out;
  }

  /**
   * Decides one delivery (of the event at `eventSeq`) and records what it changes. Decisions of
   * deliveries planned earlier in the batch may still change: a later one can replace them.
   */
  decide(d: NewDelivery, eventSeq: number): Decision {
    const decision: Decision = { status: 'pending', reason: null };
    const g = d.gates;
    if (!g) return decision;
    const refs = new Map(keysOf(d).map((r) => [r.kind, r]));
    const suppress = (reason: string) => {
      decision.status = 'suppressed';
      decision.reason = reason;
      return decision;
    };

    const dedupeRef = refs.get('dedupe');
    let dedupeWindow: KeyRow | null = null;
    if (g.dedupe && dedupeRef) {
      const row = this.row(dedupeRef);
      if (
        row &&
        g.at < row.windowStart + g.dedupe.windowMs &&
        !this.replaces(refs.get('replace'), row, eventSeq, g.at)
      )
        return suppress(
          `deduped by key "${g.dedupe.key}": event ${row.eventId} was notified ${formatDuration(Math.max(1, g.at - row.windowStart))} before, within the ${formatDuration(g.dedupe.windowMs)} window`,
        );
      if (row && g.at < row.windowStart + g.dedupe.windowMs) dedupeWindow = row;
    }

    const replaceRef = refs.get('replace');
    let replacing:
      | { idempotencyKey: string; eventSeq: number; target: HeldDelivery | PlannedHold }
      | undefined;
    if (replaceRef) {
      const row = this.row(replaceRef);
      if (row?.deliveryKey && row.eventSeq !== null) {
        if (row.eventSeq > eventSeq)
          return suppress(`replaced by event ${row.eventId} (newer, same key "${replaceRef.key}")`);
        const target = this.heldDelivery(row.deliveryKey, row.eventSeq);
        // Only a delivery no dispatcher can have taken yet: pending, never attempted, not yet due.
        if (target && target.status === 'pending' && target.attempts === 0 && target.nextAttemptAt > g.at)
          replacing = { idempotencyKey: row.deliveryKey, eventSeq: row.eventSeq, target };
      }
    }

    // A digest is joinable while no dispatcher can have taken it (as for replace) and it has room.
    const digestRef = refs.get('digest');
    let joining: { row: KeyRow; deliveryKey: string; target: HeldDelivery | PlannedHold } | undefined;
    if (g.digest && digestRef && !replacing) {
      const row = this.row(digestRef);
      const target = row?.deliveryKey ? this.heldDelivery(row.deliveryKey, row.eventSeq) : null;
      if (
        row?.deliveryKey &&
        row.count < g.digest.max &&
        target &&
        target.status === 'pending' &&
        target.attempts === 0 &&
        target.nextAttemptAt > g.at
      )
        joining = { row, deliveryKey: row.deliveryKey, target };
    }

    const throttleRef = refs.get('throttle');
    const throttleRow = throttleRef ? this.row(throttleRef) : null;
    const throttleOpen =
      throttleRow !== null && g.throttle !== undefined && g.at < throttleRow.windowStart + g.throttle.perMs;
    // A replacement takes the slot of the delivery it replaces, and an event joining a digest is
    // no message of its own: the recipient is not told more often.
    if (
      g.throttle &&
      throttleRef &&
      !replacing &&
      !joining &&
      throttleOpen &&
      throttleRow!.count >= g.throttle.limit
    )
      return suppress(
        `throttled: ${g.throttle.limit}/${formatDuration(g.throttle.perMs)} for key "${g.throttle.key}"`,
      );

    // Accepted: the keys remember it.
    const fresh = (): KeyRow => ({
      windowStart: g.at,
      count: 1,
      deliveryKey: d.idempotencyKey,
      eventSeq,
      eventId: g.eventId,
    });
    // A repeat that replaced the waiting notification of its key takes its place in the window,
    // which still runs from the first: replacing never lengthens a dedupe window.
    if (dedupeRef)
      this.write(dedupeRef, dedupeWindow ? { ...fresh(), windowStart: dedupeWindow.windowStart } : fresh());
    if (replaceRef) this.write(replaceRef, fresh());
    if (g.throttle && throttleRef && !replacing && !joining)
      this.write(throttleRef, throttleOpen ? { ...throttleRow!, count: throttleRow!.count + 1 } : fresh());
    if (g.digest && digestRef && joining) {
      const count = joining.row.count + 1;
      this.write(digestRef, { ...joining.row, count });
      this.digestMembers.push({ deliveryKey: joining.deliveryKey, eventSeq, key: g.digest.key });
      if (count >= g.digest.max) {
        // Full: send it now rather than at the end of its window.
        const due = Math.min(joining.target.nextAttemptAt, g.digest.dueWhenFull ?? g.at);
        joining.target.nextAttemptAt = due;
        if ('decision' in joining.target) joining.target.decision.notBefore = due;
        else
          this.dueStored.push({
            idempotencyKey: joining.deliveryKey,
            eventSeq: joining.row.eventSeq!,
            at: due,
          });
      }
      // Not a waiting delivery of its own: nothing can replace or join it.
      return suppress(
        `digested into delivery ${joining.deliveryKey} of event ${joining.row.eventId} (key "${g.digest.key}")`,
      );
    }
    if (g.digest && digestRef) {
      this.write(digestRef, fresh());
      this.digestMembers.push({ deliveryKey: d.idempotencyKey, eventSeq, key: g.digest.key });
    }
    if (replacing) {
      const reason = `replaced by event ${g.eventId}`;
      replacing.target.status = 'suppressed';
      if ('decision' in replacing.target) {
        replacing.target.decision.status = 'suppressed';
        replacing.target.decision.reason = reason;
      } else
        this.replacedStored.push({
          idempotencyKey: replacing.idempotencyKey,
          eventSeq: replacing.eventSeq,
          reason,
        });
    }
    this.held.set(d.idempotencyKey, { status: 'pending', attempts: 0, nextAttemptAt: d.notBefore, decision });
    return decision;
  }

  /**
   * Whether this delivery's replace key points at the very delivery a dedupe key remembers, and
   * that one is still waiting: then the repeat is the newer notification of the same thing, and
   * replacing it — newest wins — is what dedupe + replace ask for, not dropping the newer.
   */
  private replaces(replaceRef: KeyRef | undefined, dedupeRow: KeyRow, eventSeq: number, at: number): boolean {
    if (!replaceRef || !dedupeRow.deliveryKey) return false;
    const row = this.row(replaceRef);
    if (!row || row.deliveryKey !== dedupeRow.deliveryKey || row.eventSeq === null || row.eventSeq > eventSeq)
      return false;
    const target = this.heldDelivery(row.deliveryKey, row.eventSeq);
    return !!target && target.status === 'pending' && target.attempts === 0 && target.nextAttemptAt > at;
  }

  private row(ref: KeyRef): KeyRow | null {
    const id = refId(ref);
    let entry = this.rows.get(id);
    if (!entry) {
      entry = { ref, row: this.loadKey(ref), dirty: false };
      this.rows.set(id, entry);
    }
    return entry.row;
  }

  private write(ref: KeyRef, row: KeyRow): void {
    this.rows.set(refId(ref), { ref, row, dirty: true });
  }

  private heldDelivery(idempotencyKey: string, eventSeq: number | null): HeldDelivery | PlannedHold | null {
    if (!this.held.has(idempotencyKey))
      this.held.set(idempotencyKey, eventSeq === null ? null : this.loadHeld(idempotencyKey, eventSeq));
    return this.held.get(idempotencyKey) ?? null;
  }
}
