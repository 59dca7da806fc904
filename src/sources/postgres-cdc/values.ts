import pg from 'pg';

/**
 * PostgreSQL text-format values → the JSON Debezium's JSON converter writes for them (with
 * `decimal.handling.mode=string` and the default `time.precision.mode=adaptive`). Both the
 * snapshot (pg with every type parser set to identity) and the stream (pgoutput's text tuples)
 * hand values here as PostgreSQL's text form, so the two paths cannot disagree.
 *
 * Connections that produce the text set `TimeZone=UTC` and `DateStyle=ISO`, which this relies on.
 */
export type Converter = (text: string) => unknown;

const identity: Converter = (text) => text;

const integer: Converter = (text) => Number(text);
const bigint: Converter = (text) => {
  const n = Number(text);
  // JSON numbers past 2^53 would silently change value; keep those exact as strings.
  return Number.isSafeInteger(n) ? n : text;
};
const float: Converter = (text) => {
  const n = Number(text);
  return Number.isFinite(n) ? n : text; // NaN, Infinity, -Infinity stay as PostgreSQL writes them
};
const bool: Converter = (text) => text === 't';
const bytea: Converter = (text) =>
  text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex').toString('base64') : text;

/** Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z0: number): [number, number, number] {
  const z = z0 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const TIMESTAMP =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::?(\d\d)(?::?(\d\d))?)?)?$/;

interface Parsed {
  /** Whole seconds since the epoch, UTC. */
  seconds: number;
  /** Fraction digits as written (up to 6). */
  fraction: string;
}

function parseTimestamp(text: string): Parsed | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null; // infinity, -infinity, BC dates
  const days = daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3]));
  let seconds = days * 86400 + Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
  if (m[8]) {
    const offset = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    seconds -= m[8] === '+' ? offset : -offset;
  }
  return { seconds, fraction: m[7] ?? '' };
}

const micros = (fraction: string) => (fraction ? Number(fraction.padEnd(6, '0')) : 0);

/** timestamp → io.debezium.time.MicroTimestamp: microseconds since the epoch. */
const timestamp: Converter = (text) => {
  const p = parseTimestamp(text);
  return p ? p.seconds * 1_000_000 + micros(p.fraction) : text;
};

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** timestamptz → io.debezium.time.ZonedTimestamp: ISO-8601 in UTC, fraction without trailing zeros. */
const timestamptz: Converter = (text) => {
  const p = parseTimestamp(text);
  if (!p) return text;
  const days = Math.floor(p.seconds / 86400);
  const rest = p.seconds - days * 86400;
  const [y, mo, d] = civilFromDays(days);
  const fraction = p.fraction.replace(/0+$/, '');
  return `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(Math.floor(rest / 3600))}:${pad(Math.floor((rest % 3600) / 60))}:${pad(rest % 60)}${fraction ? `.${fraction}` : ''}Z`;
};

/** date → io.debezium.time.Date: days since the epoch. */
const date: Converter = (text) => {
  const m = /^(\d{4,})-(\d\d)-(\d\d)$/.exec(text);
  return m ? daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3])) : text;
};

/** time → io.debezium.time.MicroTime: microseconds since midnight. */
const time: Converter = (text) => {
  const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/.exec(text);
  return m ? (Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1_000_000 + micros(m[4] ?? '') : text;
};

/** Scalar type OIDs (pg_type.oid, stable across PostgreSQL versions) with a mapping of their own. */
const SCALARS: Record<number, Converter> = {
  16: bool,
  17: bytea,
  20: bigint,
  21: integer,
  23: integer,
  26: integer,
  700: float,
  701: float,
  1082: date,
  1083: time,
  1114: timestamp,
  1184: timestamptz,
};

/** Array type OID → element type OID. */
const ARRAYS: Record<number, number> = {
  1000: 16,
  1001: 17,
  1002: 18,
  1003: 19,
  1005: 21,
  1007: 23,
  1009: 25,
  1014: 1042,
  1015: 1043,
  1016: 20,
  1021: 700,
  1022: 701,
  1028: 26,
  1115: 1114,
  1182: 1082,
  1183: 1083,
  1185: 1184,
  1231: 1700,
  199: 114,
  2951: 2950,
  3807: 3802,
};

const parseArray = (
  pg.types as unknown as { arrayParser: { create(s: string, t: Converter): { parse(): unknown } } }
).arrayParser;

/** The converter for a column of this type; unknown types (enums, domains, …) stay text. */
export function converterFor(typeOid: number): Converter {
  const scalar = SCALARS[typeOid];
  if (scalar) return scalar;
  const element = ARRAYS[typeOid];
  if (element !== undefined) {
    const convert = SCALARS[element] ?? identity;
    return (text) => parseArray.create(text, convert).parse();
  }
  return identity;
}
