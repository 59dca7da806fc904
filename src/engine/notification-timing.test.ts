import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CloudEvent } from '../events/types.js';
import { compileTemplate } from '../templates/index.js';
import type { NotificationRules } from './model.js';
import { notificationTiming } from './notification-timing.js';
import type { PlannedRecipient } from './recipient-scope.js';

const event: CloudEvent = {
  specversion: '1.0',
  id: 'e1',
  source: 's',
  type: 't',
  data: { zone: 'Asia/Kolkata' },
};
const ann: PlannedRecipient = {
  address: 'U1',
  subscriber: { id: 'ann', name: 'Ann', preferences: { timezone: 'Europe/Berlin', digest: false } },
};
const literal: PlannedRecipient = { address: 'ops@example.com' };
const t = compileTemplate;
const byPreference = t("{{ recipient.preferences.timezone | default: 'UTC' }}");
const night = (timezone = byPreference): NotificationRules => ({
  quietHours: { fromMinute: 22 * 60, toMinute: 7 * 60, timezone },
});
// 23:30 in Berlin (CET), 22:30 UTC.
const lateEvening = Date.parse('2026-12-03T22:30:00Z');

describe('`recipient` in key templates', () => {
  const render = (source: string, recipient: PlannedRecipient) =>
    notificationTiming({ dedupe: { key: t(source), windowMs: 1000 } }, 'tr', 0, event, recipient, lateEvening)
      .gates!.dedupe!.key;

  it('renders, filters and compares as the address, as before', () => {
    assert.equal(render('{{ recipient }}', ann), 'U1');
    assert.equal(render('{{ recipient | default: "none" }}', ann), 'U1');
    assert.equal(render('{{ recipient | upcase }}:{{ recipient.size }}', literal), 'OPS@EXAMPLE.COM:15');
    assert.equal(render('{% if recipient == "U1" %}same{% else %}other{% endif %}', ann), 'same');
    assert.equal(render('{% if recipient != "U1" %}other{% else %}same{% endif %}', literal), 'other');
    assert.equal(render('{{ recipient | json }}', ann), '"U1"');
  });

  it("gives a subscriber's preferences, id and name; a literal address has none", () => {
    const source =
      '{{ recipient.id }}/{{ recipient.name }}/{{ recipient.preferences.timezone }}/{{ recipient.preferences.digest }}';
    assert.equal(render(source, ann), 'ann/Ann/Europe/Berlin/false');
    assert.equal(render(source, literal), '///');
    assert.equal(render('{{ recipient.preferences.timezone | default: "UTC" }}', literal), 'UTC');
  });

  it('no recipient renders empty, as before', () => {
    assert.equal(render('[{{ recipient }}]', { address: null }), '[]');
  });
});

describe('quiet hours in a delivery’s timing', () => {
  it('holds a delivery due in the recipient’s quiet hours until their end, with the reason', () => {
    const timing = notificationTiming(night(), 'tr', 0, event, ann, lateEvening);
    assert.equal(new Date(timing.notBefore).toISOString(), '2026-12-04T06:00:00.000Z');
    assert.equal(timing.note, 'held until 07:00 Europe/Berlin (2026-12-04)');
    assert.equal(timing.warnings, undefined);
  });

  it('checks the due time after the delay, not the routing time', () => {
    // 20:30 in Berlin, outside; a 2h delay makes it due at 22:30, inside.
    const early = Date.parse('2026-12-03T19:30:00Z');
    const rules = { ...night(), delay: { ms: 2 * 3_600_000 } };
    assert.equal(
      notificationTiming(rules, 'tr', 0, event, ann, early).note,
      'held until 07:00 Europe/Berlin (2026-12-04)',
    );
    const undelayed = notificationTiming(night(), 'tr', 0, event, ann, early);
    assert.deepEqual(undelayed, { notBefore: early });
  });

  it('reads each recipient in their own zone: a literal address without one is in UTC', () => {
    const timing = notificationTiming(night(), 'tr', 0, event, literal, lateEvening);
    assert.equal(new Date(timing.notBefore).toISOString(), '2026-12-04T07:00:00.000Z');
    assert.equal(timing.note, 'held until 07:00 UTC (2026-12-04)');
    // 04:00 the next morning in Kolkata: held until 07:00 of what is already that local day.
    const kolkata = notificationTiming(
      night(t('{{ event.data.zone }}')),
      'tr',
      0,
      event,
      literal,
      lateEvening,
    );
    assert.equal(new Date(kolkata.notBefore).toISOString(), '2026-12-04T01:30:00.000Z');
    assert.equal(kolkata.note, 'held until 07:00 Asia/Kolkata');
    const newYork = notificationTiming(night(t('America/New_York')), 'tr', 0, event, literal, lateEvening);
    assert.deepEqual(newYork, { notBefore: lateEvening }); // 17:30 there
  });

  it('a zone that is not an IANA zone holds by UTC and says so; an empty one is UTC silently', () => {
    const mars = notificationTiming(night(t('Mars/Olympus_Mons')), 'tr', 0, event, ann, lateEvening);
    assert.equal(mars.note, 'held until 07:00 UTC (2026-12-04)');
    assert.deepEqual(mars.warnings, [
      'quietHours.timezone rendered "Mars/Olympus_Mons", which is not an IANA time zone; quiet hours were read in UTC',
    ]);
    const long = notificationTiming(night(t('x'.repeat(5000))), 'tr', 0, event, ann, lateEvening);
    assert.ok(long.warnings![0]!.length < 200, 'the rendered text is cut in the message');
    const empty = notificationTiming(
      night(t('{{ recipient.preferences.nothing }}')),
      'tr',
      0,
      event,
      ann,
      lateEvening,
    );
    assert.equal(empty.note, 'held until 07:00 UTC (2026-12-04)');
    assert.equal(empty.warnings, undefined);
  });

  it('a zone template that fails holds by UTC, keeps the other keys, and says so', () => {
    const failing = {
      source: '{{ … }}',
      constant: false,
      render(): string {
        throw new Error('template failed to render: boom');
      },
    };
    const rules: NotificationRules = {
      ...night(failing),
      throttle: { key: t('{{ recipient }}'), limit: 1, perMs: 1000 },
    };
    const timing = notificationTiming(rules, 'tr', 0, event, ann, lateEvening);
    assert.equal(timing.gates!.throttle!.key, 'U1');
    assert.equal(timing.note, 'held until 07:00 UTC (2026-12-04)');
    assert.match(timing.warnings![0]!, /^quietHours\.timezone: .*; quiet hours were read in UTC$/);
  });
});
