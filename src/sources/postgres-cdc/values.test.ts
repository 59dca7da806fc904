import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HeraldError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import { checkWalLevel, defaultName, formatLsn, parseLsn } from './setup.js';
import { converterFor, daysFromCivil } from './values.js';

const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;

describe('PostgreSQL text → Debezium JSON', () => {
  it('maps the common scalar types', () => {
    assert.equal(converterFor(16)('t'), true);
    assert.equal(converterFor(16)('f'), false);
    assert.equal(converterFor(21)('-7'), -7);
    assert.equal(converterFor(23)('2147483647'), 2147483647);
    assert.equal(converterFor(20)('9007199254740991'), 9007199254740991);
    assert.equal(
      converterFor(20)('9223372036854775807'),
      '9223372036854775807',
      'past 2^53 stays exact, as text',
    );
    assert.equal(converterFor(1700)('12345678901234567890.123'), '12345678901234567890.123');
    assert.equal(converterFor(701)('1.5'), 1.5);
    assert.equal(converterFor(701)('NaN'), 'NaN');
    assert.equal(converterFor(25)('hello'), 'hello');
    assert.equal(
      converterFor(3802)('{"a": 1}'),
      '{"a": 1}',
      'json stays a string, as Debezium’s io.debezium.data.Json',
    );
    assert.equal(converterFor(17)('\\x48656c6c6f'), 'SGVsbG8=');
    assert.equal(converterFor(1082)('1970-01-02'), 1);
    assert.equal(converterFor(1082)('2024-02-29'), 19782);
    assert.equal(converterFor(1083)('01:00:00.5'), 3_600_500_000);
    assert.equal(converterFor(TIMESTAMP)('2024-01-02 03:04:05.123456'), 1704164645123456);
    assert.equal(converterFor(TIMESTAMPTZ)('2024-01-02 03:04:05.1+02'), '2024-01-02T01:04:05.1Z');
    assert.equal(converterFor(TIMESTAMPTZ)('2024-01-02 03:04:05+05:30'), '2024-01-01T21:34:05Z');
    assert.equal(converterFor(TIMESTAMPTZ)('infinity'), 'infinity');
    assert.equal(converterFor(98765)('an enum label'), 'an enum label');
  });

  it('maps arrays element by element, NULLs included', () => {
    assert.deepEqual(converterFor(1007)('{1,2,NULL}'), [1, 2, null]);
    assert.deepEqual(converterFor(1009)('{a,"b c","d\\"e",NULL}'), ['a', 'b c', 'd"e', null]);
    assert.deepEqual(converterFor(1007)('{{1,2},{3,4}}'), [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(converterFor(1000)('{t,f}'), [true, false]);
    assert.deepEqual(converterFor(1231)('{1.10,2}'), ['1.10', '2']);
    assert.deepEqual(converterFor(1185)('{"2024-01-02 03:04:05+00"}'), ['2024-01-02T03:04:05Z']);
  });

  it('timestamps agree with the JavaScript clock for any instant (property)', () => {
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('0001-01-01T00:00:00Z'),
          max: new Date('9999-12-31T23:59:59Z'),
          noInvalidDate: true,
        }),
        fc.integer({ min: 0, max: 999 }),
        fc.integer({ min: -14, max: 14 }),
        (date, extraMicros, offsetHours) => {
          const ms = date.getTime();
          // PostgreSQL's ISO text of this instant in a zone offsetHours from UTC.
          const local = new Date(ms + offsetHours * 3_600_000);
          const fraction = String(local.getUTCMilliseconds() * 1000 + extraMicros).padStart(6, '0');
          const text = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}.${fraction}`;
          const zone = `${offsetHours < 0 ? '-' : '+'}${pad(Math.abs(offsetHours))}`;
          const iso = converterFor(TIMESTAMPTZ)(text + zone) as string;
          assert.equal(Date.parse(iso), ms, `${text}${zone} → ${iso}`);
          assert.ok(iso.endsWith('Z'));
          const micros = converterFor(TIMESTAMP)(text) as number;
          const exact = BigInt(ms + offsetHours * 3_600_000) * 1000n + BigInt(extraMicros);
          // Exact while a JSON number can hold it (years 1685–2255); beyond, the nearest doubles.
          if (Number.isSafeInteger(Number(exact))) assert.equal(micros, Number(exact));
          else assert.ok(Math.abs(micros - Number(exact)) <= 64, `${micros} vs ${exact}`);
        },
      ),
    );
  });

  it('days from civil dates match Date.UTC', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9999 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 28 }),
        (y, m, d) => {
          const date = new Date(0);
          date.setUTCFullYear(y, m - 1, d);
          assert.equal(daysFromCivil(y, m, d), Math.round(date.getTime() / 86_400_000));
        },
      ),
    );
  });
});

describe('postgres-cdc helpers', () => {
  it('refuses a wal_level other than logical with the fix in the message', () => {
    assert.throws(
      () => checkWalLevel('replica'),
      (err: unknown) =>
        err instanceof HeraldError &&
        err.message === "wal_level is 'replica'; set wal_level=logical and restart PostgreSQL",
    );
    checkWalLevel('logical');
  });

  it('never shows a password', () => {
    assert.equal(redactUrl('postgres://herald:s3cret@db:5432/shop'), 'postgres://••••@db:5432/shop');
    assert.equal(redactUrl('postgres://db/shop'), 'postgres://db/shop');
    assert.doesNotMatch(redactUrl('not a url://u:s3cret@x'), /s3cret/);
  });

  it('reads and writes LSNs', () => {
    assert.equal(parseLsn('0/1E1DC88'), 0x1e1dc88n);
    assert.equal(parseLsn('00000001/00000010'), (1n << 32n) + 16n);
    assert.equal(formatLsn(parseLsn('16/B374D848')), '16/B374D848');
  });

  it('names slots after the source', () => {
    assert.equal(defaultName('herald', 'Shop-DB'), 'herald_shop_db');
  });
});
