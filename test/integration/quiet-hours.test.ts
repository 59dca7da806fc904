import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DateTime } from 'luxon';
import type { EventExplanation } from '../../src/server/api-types.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

// Quiet hours end to end on the embedded store. Herald has no injectable clock, so the quiet
// period is chosen around the real time when the test starts: it began an hour ago and ends in
// two hours, read in UTC (Africa/Abidjan is UTC all year). Tokyo, nine hours ahead, is outside it.

const hhmm = (ms: number) => DateTime.fromMillis(ms, { zone: 'UTC' }).toFormat('HH:mm');
const startedAt = Date.now();
const from = hhmm(startedAt - 3_600_000);
// The period ends at the start of the minute two hours from now: that instant is the due time.
const endsAt = DateTime.fromMillis(startedAt + 2 * 3_600_000, { zone: 'UTC' }).startOf('minute');
const to = endsAt.toFormat('HH:mm');
/** ` (YYYY-MM-DD)` when the period ends on another UTC day than today. */
const dateIfLater = (ms: number) => {
  const day = DateTime.fromMillis(ms, { zone: 'UTC' }).toISODate();
  return endsAt.toISODate() === day ? '' : ` (${endsAt.toISODate()})`;
};

const CONFIG = `
channels:
  box: { kind: inbox }
subscriptions:
  preferences:
    timezone: { type: enum, values: [Asia/Tokyo, Africa/Abidjan, Mars/Olympus_Mons], default: Asia/Tokyo }
triggers:
  build-failed:
    filter: { exact: { type: ci.failed } }
    actions:
      - channel: box
        to: { subscribersOf: "repo:{{ event.subject }}" }
        text: "build {{ event.data.run }} failed"
        dedupe: { key: "{{ event.data.run }}", window: 1h }
        quietHours: { from: "${from}", to: "${to}", timezone: "{{ recipient.preferences.timezone | default: 'UTC' }}" }
  ops:
    filter: { exact: { type: ops.page } }
    actions:
      - channel: box
        to: "#ops"
        text: "page"
        quietHours: { from: "${from}", to: "${to}" }
`;

interface DeliveryView {
  id: number;
  recipient: string | null;
  status: string;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  note: string | null;
}

describe('quiet hours on the embedded store', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
    const people: [string, string, string | null][] = [
      ['ann', 'Ann', 'Africa/Abidjan'],
      ['bob', 'Bob', null],
      ['cara', 'Cara', 'Mars/Olympus_Mons'],
    ];
    for (const [id, name, timezone] of people) {
      assert.equal((await herald.post('/api/subscribers', { id, name })).status, 201);
      assert.equal(
        (await herald.post(`/api/subscribers/${id}/subscriptions`, { key: 'repo:web' })).status,
        201,
      );
      if (timezone) {
        const res = await fetch(`${herald.url}/api/subscribers/${id}/preferences`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ timezone }),
        });
        assert.equal(res.status, 200, await res.text());
      }
    }
  });
  after(async () => {
    await herald.close();
  });

  const send = async (id: string, type: string, data: Record<string, unknown> = {}) => {
    const res = await herald.post(
      '/events',
      { specversion: '1.0', id, source: 'test/quiet', type, subject: 'web', data },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202, await res.text());
  };
  const detail = (id: string) =>
    eventually(async () => {
      const res = await herald.get(`/api/events/${id}`);
      if (res.status !== 200) return undefined;
      const body = (await res.json()) as {
        routedAt: number | null;
        routing: { errors: { trigger: string; dialect: string; kind: string; message: string }[] };
        deliveries: DeliveryView[];
      };
      return body.routedAt ? body : undefined;
    });
  const inbox = async () =>
    (
      (await (await herald.get('/api/inbox?limit=200')).json()) as {
        messages: { eventId: string; recipient: string }[];
      }
    ).messages;

  it('holds the delivery of a subscriber in quiet hours, sends another zone’s at once, and a bad zone holds by UTC', async () => {
    await send('q-1', 'ci.failed', { run: 'r1' });
    const event = await detail('q-1');
    const routedAt = event.routedAt!;
    const of = (recipient: string) => event.deliveries.find((d) => d.recipient === recipient)!;

    const ann = of('ann');
    assert.equal(ann.status, 'pending');
    assert.equal(ann.attempts, 0);
    assert.equal(ann.nextAttemptAt, endsAt.toMillis());
    assert.equal(ann.note, `held until ${to} Africa/Abidjan${dateIfLater(routedAt)}`);
    assert.equal(ann.lastError, null, 'a hold is not an error');

    // Tokyo (the default) is nine hours ahead: outside the period, sent at once.
    await eventually(async () => (await inbox()).some((m) => m.eventId === 'q-1' && m.recipient === 'bob'));
    const bob = (await detail('q-1')).deliveries.find((d) => d.recipient === 'bob')!;
    assert.equal(bob.status, 'delivered');
    assert.equal(bob.note, null);

    const cara = of('cara');
    assert.equal(cara.status, 'pending');
    assert.equal(cara.nextAttemptAt, endsAt.toMillis());
    assert.equal(cara.note, `held until ${to} UTC${dateIfLater(routedAt)}`);
    assert.deepEqual(event.routing.errors, [
      {
        trigger: 'build-failed',
        dialect: 'notify',
        kind: 'quietHours',
        message:
          'quietHours.timezone rendered "Mars/Olympus_Mons", which is not an IANA time zone; quiet hours were read in UTC',
      },
    ]);
    assert.deepEqual(
      (await inbox()).filter((m) => m.eventId === 'q-1').map((m) => m.recipient),
      ['bob'],
      'nobody in quiet hours was told',
    );
  });

  it('explain says the held delivery is pending and until when, for the whole event and for one person', async () => {
    const res = await herald.get('/api/events/q-1/explain?recipient=ann');
    assert.equal(res.status, 200);
    const x = (await res.json()) as EventExplanation;
    const due = new Date(endsAt.toMillis()).toISOString();
    assert.deepEqual(x.recipient!.verdict, [
      `trigger build-failed action 0 (box) notifies ann: pending: first attempt due ${due}, held until ${to} Africa/Abidjan${dateIfLater(x.event.routedAt!)}`,
    ]);
    const whole = (await (await herald.get('/api/events/q-1/explain')).json()) as EventExplanation;
    const fates = whole.triggers[0]!.actions[0]!.recipients.map((r) => [
      r.subscriber,
      r.delivery!.fate,
      r.delivery!.note,
    ]);
    assert.deepEqual(fates.sort(), [
      ['ann', 'pending', `held until ${to} Africa/Abidjan${dateIfLater(x.event.routedAt!)}`],
      ['bob', 'delivered', null],
      ['cara', 'pending', `held until ${to} UTC${dateIfLater(x.event.routedAt!)}`],
    ]);
  });

  it('a repeat of a held notification is deduped: the hold counts as notified', async () => {
    await send('q-2', 'ci.failed', { run: 'r1' });
    const event = await detail('q-2');
    const ann = event.deliveries.find((d) => d.recipient === 'ann')!;
    assert.equal(ann.status, 'suppressed');
    assert.match(ann.lastError!, /^deduped by key "r1": event q-1/);
    assert.equal(ann.note, null);
  });

  it('a literal recipient without a zone is held in UTC', async () => {
    await send('q-3', 'ops.page');
    const event = await detail('q-3');
    const [page] = event.deliveries;
    assert.equal(page!.recipient, '#ops');
    assert.equal(page!.status, 'pending');
    assert.equal(page!.nextAttemptAt, endsAt.toMillis());
    assert.equal(page!.note, `held until ${to} UTC${dateIfLater(event.routedAt!)}`);
    assert.deepEqual(event.routing.errors, []);
  });
});
