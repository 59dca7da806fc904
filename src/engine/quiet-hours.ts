import { DateTime, IANAZone } from 'luxon';

/**
 * Quiet hours: a daily period of local wall-clock time, `from` (inclusive) to `to` (exclusive),
 * in minutes after local midnight. `from > to` spans midnight; `from == to` is refused by the
 * config. Local time is read in an IANA zone, so DST changes move the instants, not the hours.
 */
export interface QuietPeriod {
  fromMinute: number;
  toMinute: number;
}

/** Longest text a rendered zone may be; IANA names are far shorter (the longest is 32). */
export const MAX_ZONE_LENGTH = 64;

const DAY_MS = 86_400_000;
/** A DST gap is at most a few hours; the walk back to its end never goes further than this. */
const MAX_GAP_MINUTES = 24 * 60;

/** `HH:MM` (24h) → minutes after midnight; an Error naming the text otherwise. */
export function parseLocalTime(text: string): number | Error {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!m) return new Error(`"${text.slice(0, 40)}" is not a local time HH:MM (00:00 to 23:59)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

export function formatLocalTime(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
}

// Checking a name builds an Intl formatter: cache the answers for the few zones a config meets.
const zoneCache = new Map<string, string | null>();
const ZONE_CACHE_MAX = 1000;

/**
 * The zone's name as written when it is an IANA zone, or null. Offsets (`+01:00`) are refused: a
 * zone is a place. The name is not canonicalised: Intl would turn `Asia/Kolkata` into the older
 * `Asia/Calcutta`, which is not what anyone wrote.
 */
export function ianaZone(text: string): string | null {
  const cached = zoneCache.get(text);
  if (cached !== undefined) return cached;
  const name =
    text.length <= MAX_ZONE_LENGTH &&
    /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(text) &&
    IANAZone.isValidZone(text)
      ? text
      : null;
  if (zoneCache.size >= ZONE_CACHE_MAX) zoneCache.clear();
  zoneCache.set(text, name);
  return name;
}

function msOfDay(local: DateTime): number {
  return ((local.hour * 60 + local.minute) * 60 + local.second) * 1000 + local.millisecond;
}

/** Whether the instant `at` falls in the quiet period, read in `zone` (a valid IANA name). */
export function isQuiet(at: number, period: QuietPeriod, zone: string): boolean {
  const t = msOfDay(DateTime.fromMillis(at, { zone }));
  const from = period.fromMinute * 60_000;
  const to = period.toMinute * 60_000;
  return from < to ? t >= from && t < to : t >= from || t < to;
}

/**
 * When a delivery due at `at` may be sent: `at` itself outside quiet hours, otherwise the end of
 * the quiet period it falls in — the first instant after `at` whose local time is `to`. A `to`
 * the clocks skip (a spring-forward gap) ends the period at the first minute after the gap; a `to`
 * that occurs twice (fall-back) ends it at its first occurrence after `at`.
 */
export function quietUntil(at: number, period: QuietPeriod, zone: string): number {
  let due = at;
  // An end can land in quiet hours again only when a gap swallowed the whole non-quiet stretch
  // of that day (e.g. 02:45–02:30 around a 02:00–03:00 gap); the next day's end is then the end.
  for (let i = 0; i < 3 && isQuiet(due, period, zone); i++) due = periodEnd(due, period, zone);
  return due;
}

function periodEnd(at: number, period: QuietPeriod, zone: string): number {
  const local = DateTime.fromMillis(at, { zone });
  const spansMidnight = period.fromMinute > period.toMinute;
  const endDay =
    spansMidnight && msOfDay(local) >= period.fromMinute * 60_000 ? local.plus({ days: 1 }) : local;
  const hour = Math.floor(period.toMinute / 60);
  const minute = period.toMinute % 60;
  const end = DateTime.fromObject(
    { year: endDay.year, month: endDay.month, day: endDay.day, hour, minute },
    { zone },
  );
  if (end.hour !== hour || end.minute !== minute) return gapEnd(end);
  // An ambiguous local time (fall-back) has two instants; the period ends at the first after `at`.
  const candidates = [end, ...end.getPossibleOffsets()].map((d) => d.toMillis()).filter((ms) => ms > at);
  return candidates.length > 0 ? Math.min(...candidates) : at + DAY_MS;
}

/**
 * luxon moves a local time inside a DST gap forward by the gap's length (02:30 → 03:30); the
 * period ends instead at the first minute that exists after the gap (03:00), which is the
 * transition itself: step back while the offset stays the one after the gap.
 */
function gapEnd(moved: DateTime): number {
  let t = moved;
  for (let i = 0; i < MAX_GAP_MINUTES; i++) {
    const earlier = t.minus({ minutes: 1 });
    if (earlier.offset !== t.offset) break;
    t = earlier;
  }
  return t.startOf('minute').toMillis();
}

/**
 * The reason recorded on a held delivery: `held until 07:00 Europe/Berlin`, with the local date
 * when it is not the local day of `routedAt` (`held until 07:00 Europe/Berlin (2026-12-04)`).
 */
export function heldReason(until: number, routedAt: number, zone: string): string {
  const end = DateTime.fromMillis(until, { zone });
  const day = DateTime.fromMillis(routedAt, { zone }).toISODate();
  const date = end.toISODate();
  return `held until ${end.toFormat('HH:mm')} ${zone}${date === day ? '' : ` (${date})`}`;
}
