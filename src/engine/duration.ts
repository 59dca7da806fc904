/**
 * Durations as the config writes them: a whole number and a unit — `500ms`, `30s`, `10m`, `24h`,
 * `7d`. One parser for every key that takes one (dedupe windows, throttle periods, delays).
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The longest duration accepted: a year. Longer windows or delays are almost surely a typo. */
export const MAX_DURATION_MS = 365 * UNIT_MS.d;

const DURATION = /^(\d{1,12})(ms|s|m|h|d)$/;

/** Milliseconds of a duration, or an Error saying what is wrong with the text. */
export function parseDuration(text: string): number | Error {
  const match = DURATION.exec(text.trim());
  if (!match)
    return new Error(
      `"${text.length > 40 ? `${text.slice(0, 40)}…` : text}" is not a duration: write a whole number and a unit, e.g. 500ms, 30s, 10m, 24h, 7d`,
    );
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms <= 0) return new Error(`a duration must be longer than zero (got "${text}")`);
  if (ms > MAX_DURATION_MS) return new Error(`"${text}" is longer than the 365d a duration may be`);
  return ms;
}

/** The shortest text that parses back to `ms` (for messages such as `throttled: 5/1h`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
