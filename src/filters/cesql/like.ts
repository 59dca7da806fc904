/**
 * CESQL `LIKE` without a regular expression. A backtracking RegExp made of `.*` runs is
 * exponential in the number of `%`s on an unlucky value (80,000 dots against `%.%.created` took
 * seconds); this matcher keeps one restart point, the last `%` seen, and is O(value × pattern)
 * in the worst case and linear in the common one.
 */

/** One element of a compiled pattern: a literal code point (≥ 0), `_` (any one) or `%` (any run). */
const ANY_ONE = -1;
const ANY_RUN = -2;

/** A compiled LIKE pattern; compile once per expression, match many times. */
export interface LikePattern {
  readonly source: string;
  readonly tokens: Int32Array;
}

/** Counts the work of one evaluation; matching stops once `remaining` goes below zero. */
export interface WorkMeter {
  remaining: number;
}

/**
 * `%` any run, `_` one character (a Unicode code point), `\%` `\_` `\\` the characters
 * themselves; any other character, a lone backslash included, is itself.
 */
export function compileLike(pattern: string): LikePattern {
  const chars = Array.from(pattern);
  const tokens: number[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    const next = chars[i + 1];
    if (ch === '\\' && (next === '%' || next === '_' || next === '\\')) {
      tokens.push(next.codePointAt(0)!);
      i++;
    } else if (ch === '%') {
      // `%%` means what `%` means; one token keeps the restart bookkeeping simple.
      if (tokens[tokens.length - 1] !== ANY_RUN) tokens.push(ANY_RUN);
    } else if (ch === '_') tokens.push(ANY_ONE);
    else tokens.push(ch.codePointAt(0)!);
  }
  return { source: pattern, tokens: Int32Array.from(tokens) };
}

/** Length in UTF-16 units of the code point at `i`. */
function codePointWidth(value: string, i: number): number {
  return value.codePointAt(i)! > 0xffff ? 2 : 1;
}

/**
 * Whether `value` matches `pattern` as a whole. Each step of the scan costs one unit of `meter`;
 * when it runs out the answer is false and `meter.remaining` is negative, which the caller reports.
 */
export function likeMatches(pattern: LikePattern, value: string, meter?: WorkMeter): boolean {
  const tokens = pattern.tokens;
  const m = tokens.length;
  const n = value.length;
  let v = 0;
  let p = 0;
  // Where the last `%` stood in the pattern, and where in the value its run currently ends.
  let runAt = -1;
  let runEnd = 0;
  let steps = 0;
  const budget = meter ? meter.remaining : Number.POSITIVE_INFINITY;
  while (v < n) {
    if (++steps > budget) {
      meter!.remaining = -1;
      return false;
    }
    if (p < m) {
      const token = tokens[p]!;
      if (token === ANY_RUN) {
        runAt = p++;
        runEnd = v;
        continue;
      }
      const at = value.codePointAt(v)!;
      if (token === ANY_ONE || token === at) {
        v += at > 0xffff ? 2 : 1;
        p++;
        continue;
      }
    }
    if (runAt < 0) return settle(meter, steps, false);
    // Let the last `%` swallow one more character and try the rest of the pattern again from there.
    runEnd += codePointWidth(value, runEnd);
    v = runEnd;
    p = runAt + 1;
  }
  while (p < m && tokens[p] === ANY_RUN) p++;
  return settle(meter, steps, p === m);
}

function settle(meter: WorkMeter | undefined, steps: number, result: boolean): boolean {
  if (meter) meter.remaining -= steps;
  return result;
}
