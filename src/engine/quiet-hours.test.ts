import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  heldReason,
  ianaZone,
  isQuiet,
  parseLocalTime,
  type QuietPeriod,
  quietUntil,
} from './quiet-hours.js';

const period = (from: string, to: string): QuietPeriod => ({
  fromMinute: parseLocalTime(from) as number,
  toMinute: parseLocalTime(to) as number,
});
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const BERLIN = 'Europe/Berlin';
const NEW_YORK = 'America/New_York';
const night = period('22:00', '07:00');

describe('quiet hours spanning midnight (22:00–07:00)', () => {
  it('holds a delivery due in the evening until the next local morning', () => {
    assert.equal(iso(quietUntil(at('2026-12-03T23:30:00+01:00'), night, BERLIN)), '2026-12-04T06:00:00.000Z');
  });

  it('holds a delivery due after midnight until the same local morning', () => {
    assert.equal(iso(quietUntil(at('2026-12-04T03:00:00+01:00'), night, BERLIN)), '2026-12-04T06:00:00.000Z');
  });

  it('leaves a delivery due in the day alone', () => {
    const noon = at('2026-12-04T12:00:00+01:00');
    assert.equal(quietUntil(noon, night, BERLIN), noon);
  });

  it('holds at exactly `from` and sends at exactly `to`', () => {
    assert.equal(iso(quietUntil(at('2026-12-03T22:00:00+01:00'), night, BERLIN)), '2026-12-04T06:00:00.000Z');
    const seven = at('2026-12-04T07:00:00+01:00');
    assert.equal(quietUntil(seven, night, BERLIN), seven);
    assert.equal(quietUntil(seven - 1, night, BERLIN), seven);
    const justBefore = at('2026-12-03T21:59:59.999+01:00');
    assert.equal(quietUntil(justBefore, night, BERLIN), justBefore);
  });

  it('reads the hours in the recipient’s zone: the same instant is quiet in Berlin, not in New York', () => {
    const instant = at('2026-12-03T23:30:00+01:00'); // 17:30 in New York
    assert.equal(quietUntil(instant, night, NEW_YORK), instant);
    assert.notEqual(quietUntil(instant, night, BERLIN), instant);
    assert.equal(iso(quietUntil(instant, night, 'UTC')), '2026-12-04T07:00:00.000Z');
  });
});

describe('quiet hours within one day (12:00–13:00)', () => {
  const lunch = period('12:00', '13:00');
  it('holds inside until `to` the same day, and not outside', () => {
    assert.equal(iso(quietUntil(at('2026-12-04T12:30:00+01:00'), lunch, BERLIN)), '2026-12-04T12:00:00.000Z');
    assert.equal(iso(quietUntil(at('2026-12-04T12:00:00+01:00'), lunch, BERLIN)), '2026-12-04T12:00:00.000Z');
    for (const outside of [
      '2026-12-04T13:00:00+01:00',
      '2026-12-04T11:59:59.999+01:00',
      '2026-12-04T23:00:00+01:00',
    ]) {
      assert.equal(quietUntil(at(outside), lunch, BERLIN), at(outside), outside);
    }
  });
});

describe('quiet hours across DST in Europe/Berlin', () => {
  it('spring forward: a night that is an hour shorter still ends at 07:00 local', () => {
    // 2026-03-29 02:00 CET becomes 03:00 CEST.
    assert.equal(iso(quietUntil(at('2026-03-28T23:00:00+01:00'), night, BERLIN)), '2026-03-29T05:00:00.000Z');
  });

  it('spring forward: a `to` inside the gap ends the period at the first minute after it', () => {
    const held = quietUntil(at('2026-03-29T01:30:00+01:00'), period('01:00', '02:30'), BERLIN);
    assert.equal(iso(held), '2026-03-29T01:00:00.000Z'); // 03:00 CEST
    assert.equal(heldReason(held, at('2026-03-29T01:30:00+01:00'), BERLIN), 'held until 03:00 Europe/Berlin');
  });

  it('spring forward: when the gap swallows the only free minutes of the day, the next day’s end counts', () => {
    // Quiet from 02:45 to 02:30: on 29 March the clocks skip 02:00–03:00, so 02:30–02:45 never happens.
    const held = quietUntil(at('2026-03-28T12:00:00+01:00'), period('02:45', '02:30'), BERLIN);
    assert.equal(iso(held), '2026-03-30T00:30:00.000Z'); // 02:30 CEST on the 30th
  });

  it('fall back: a night that is an hour longer still ends at 07:00 local', () => {
    // 2026-10-25 03:00 CEST becomes 02:00 CET.
    assert.equal(iso(quietUntil(at('2026-10-24T23:00:00+02:00'), night, BERLIN)), '2026-10-25T06:00:00.000Z');
  });

  it('fall back: a `to` that happens twice ends the period at its first occurrence after the due time', () => {
    const early = period('01:00', '02:30');
    assert.equal(iso(quietUntil(at('2026-10-25T01:30:00+02:00'), early, BERLIN)), '2026-10-25T00:30:00.000Z');
    // 02:10 on the second pass (CET) is quiet again by the clock on the wall: until 02:30 CET.
    assert.equal(iso(quietUntil(at('2026-10-25T02:10:00+01:00'), early, BERLIN)), '2026-10-25T01:30:00.000Z');
    const afterFirst = at('2026-10-25T02:40:00+02:00');
    assert.equal(quietUntil(afterFirst, early, BERLIN), afterFirst);
  });
});

describe('quiet hours across DST in America/New_York', () => {
  it('spring forward: the night ends at 07:00 EDT', () => {
    // 2026-03-08 02:00 EST becomes 03:00 EDT.
    assert.equal(
      iso(quietUntil(at('2026-03-07T23:00:00-05:00'), night, NEW_YORK)),
      '2026-03-08T11:00:00.000Z',
    );
  });

  it('spring forward: a `to` of 02:15 ends the period at 03:00 EDT', () => {
    assert.equal(
      iso(quietUntil(at('2026-03-08T01:30:00-05:00'), period('01:00', '02:15'), NEW_YORK)),
      '2026-03-08T07:00:00.000Z',
    );
  });

  it('fall back: the night ends at 07:00 EST, and a twice-seen `to` at its next occurrence', () => {
    // 2026-11-01 02:00 EDT becomes 01:00 EST.
    assert.equal(
      iso(quietUntil(at('2026-10-31T23:00:00-04:00'), night, NEW_YORK)),
      '2026-11-01T12:00:00.000Z',
    );
    const midnightish = period('00:00', '01:30');
    assert.equal(
      iso(quietUntil(at('2026-11-01T00:45:00-04:00'), midnightish, NEW_YORK)),
      '2026-11-01T05:30:00.000Z',
    );
    assert.equal(
      iso(quietUntil(at('2026-11-01T01:10:00-05:00'), midnightish, NEW_YORK)),
      '2026-11-01T06:30:00.000Z',
    );
  });
});

describe('the recorded reason', () => {
  it('names the local time and zone, and the local date when it is not the day of routing', () => {
    const routed = at('2026-12-03T23:30:00+01:00');
    assert.equal(
      heldReason(quietUntil(routed, night, BERLIN), routed, BERLIN),
      'held until 07:00 Europe/Berlin (2026-12-04)',
    );
    const early = at('2026-12-04T03:00:00+01:00');
    assert.equal(
      heldReason(quietUntil(early, night, BERLIN), early, BERLIN),
      'held until 07:00 Europe/Berlin',
    );
  });
});

describe('zones', () => {
  it('accepts IANA names as written and refuses anything else', () => {
    assert.equal(ianaZone('Europe/Berlin'), 'Europe/Berlin');
    assert.equal(ianaZone('Asia/Kolkata'), 'Asia/Kolkata');
    assert.equal(ianaZone('UTC'), 'UTC');
    assert.equal(ianaZone('America/Argentina/Buenos_Aires'), 'America/Argentina/Buenos_Aires');
    for (const bad of [
      'Mars/Olympus_Mons',
      '+01:00',
      '',
      ' Europe/Berlin',
      'Europe/Berlin\n',
      `Europe/${'x'.repeat(100)}`,
    ])
      assert.equal(ianaZone(bad), null, JSON.stringify(bad));
  });

  it('parses HH:MM and names what is not one', () => {
    assert.equal(parseLocalTime('00:00'), 0);
    assert.equal(parseLocalTime('23:59'), 1439);
    for (const bad of ['24:00', '25:00', '7:00', '07:60', '07:00:00', 'noon'])
      assert.match(String(parseLocalTime(bad)), /is not a local time HH:MM/, bad);
  });
});

describe('property: the due time after quiet hours', () => {
  const zones = [
    BERLIN,
    NEW_YORK,
    'UTC',
    'Australia/Lord_Howe',
    'Asia/Kolkata',
    'America/St_Johns',
    'Pacific/Apia',
  ];
  it('is never inside quiet hours, never earlier, and unchanged outside them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2028-12-31T00:00:00Z') }),
        fc.integer({ min: 0, max: 1439 }),
        fc.integer({ min: 0, max: 1439 }),
        fc.constantFrom(...zones),
        (instant, fromMinute, toMinute, zone) => {
          fc.pre(fromMinute !== toMinute);
          const p = { fromMinute, toMinute };
          const due = quietUntil(instant, p, zone);
          assert.ok(due >= instant, 'earlier than the input');
          assert.ok(!isQuiet(due, p, zone), `inside quiet hours: ${iso(due)}`);
          if (!isQuiet(instant, p, zone)) assert.equal(due, instant);
          // Never later than needed: a held delivery waits at most a day and a bit (a DST gap).
          assert.ok(due - instant <= 2 * 86_400_000);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('holds across DST transitions too (instants near them)', () => {
    const transitions = [
      '2026-03-29T01:00:00Z', // Berlin spring
      '2026-10-25T01:00:00Z', // Berlin fall
      '2026-03-08T07:00:00Z', // New York spring
      '2026-11-01T06:00:00Z', // New York fall
    ].map(at);
    fc.assert(
      fc.property(
        fc.constantFrom(...transitions),
        fc.integer({ min: -26 * 3_600_000, max: 26 * 3_600_000 }),
        fc.integer({ min: 0, max: 1439 }),
        fc.integer({ min: 0, max: 1439 }),
        fc.constantFrom(BERLIN, NEW_YORK),
        (transition, offset, fromMinute, toMinute, zone) => {
          fc.pre(fromMinute !== toMinute);
          const p = { fromMinute, toMinute };
          const instant = transition + offset;
          const due = quietUntil(instant, p, zone);
          assert.ok(due >= instant);
          assert.ok(!isQuiet(due, p, zone), `inside quiet hours: ${iso(due)} for ${iso(instant)}`);
          if (!isQuiet(instant, p, zone)) assert.equal(due, instant);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
