import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inboxChannel } from '../channels/inbox/index.js';
import { slackChannel } from '../channels/slack/index.js';
import type { ChannelKind, SourceKind } from '../engine/types.js';
import { builtInDialects } from '../filters/index.js';
import { ConfigError, loadConfig, type Registries } from './load.js';

const registries: Registries = {
  channels: [inboxChannel, slackChannel] as ChannelKind[],
  sources: [] as SourceKind[],
  dialects: builtInDialects,
};

const withAction = (keys: string) =>
  `channels: { box: { kind: inbox } }\ntriggers:\n  t:\n    actions:\n      - channel: box\n        text: hi\n${keys}`;

function issuesOf(yaml: string) {
  try {
    loadConfig(yaml, registries, { env: {} });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('notification keys in the config', () => {
  it('compiles every key into the action, durations in milliseconds, and leaves them out of the channel params', () => {
    const config = loadConfig(
      withAction(`        dedupe: { key: "{{ event.subject }}", window: 24h }
        replace: { key: "{{ event.data.run }}" }
        throttle: { key: "{{ recipient }}", limit: 5, per: 1h }
        delay: 500ms
`),
      registries,
      { env: {} },
    );
    const action = config.triggers[0]!.actions[0]!;
    const notify = action.notify!;
    assert.equal(notify.dedupe!.windowMs, 86_400_000);
    assert.equal(notify.dedupe!.key.source, '{{ event.subject }}');
    assert.equal(notify.replace!.key.source, '{{ event.data.run }}');
    assert.deepEqual([notify.throttle!.limit, notify.throttle!.perMs], [5, 3_600_000]);
    assert.deepEqual(notify.delay, { ms: 500 });
    assert.equal((action.params as Record<string, unknown>).dedupe, undefined);
  });

  it('takes `delay: { until }` as a template', () => {
    const config = loadConfig(withAction('        delay: { until: "{{ event.data.at }}" }\n'), registries, {
      env: {},
    });
    const delay = config.triggers[0]!.actions[0]!.notify!.delay as { until: { source: string } };
    assert.equal(delay.until.source, '{{ event.data.at }}');
  });

  it('an action without keys has no rules', () => {
    const config = loadConfig(withAction(''), registries, { env: {} });
    assert.equal(config.triggers[0]!.actions[0]!.notify, undefined);
  });

  it('names the key and what is wrong: a bad duration, a missing limit, an unknown field', () => {
    assert.deepEqual(issuesOf(withAction('        delay: 5 minutes\n')).length, 1);
    assert.match(
      issuesOf(withAction('        delay: 5 minutes\n'))[0]!,
      /delay.*"5 minutes" is not a duration/,
    );
    assert.match(
      issuesOf(withAction('        dedupe: { key: x, window: 2y }\n'))[0]!,
      /actions\.0\.dedupe\.window: "2y" is not a duration/,
    );
    assert.match(
      issuesOf(withAction('        throttle: { key: x, per: 1h }\n'))[0]!,
      /actions\.0\.throttle\.limit/,
    );
    assert.match(
      issuesOf(withAction('        replace: { key: x, window: 1h }\n'))[0]!,
      /actions\.0\.replace.*window/,
    );
  });

  it('compiles `digest` with its defaults: max 100, no update', () => {
    const config = loadConfig(
      withAction('        digest: { key: "{{ recipient }}", window: 10m }\n'),
      registries,
      {
        env: {},
      },
    );
    const digest = config.triggers[0]!.actions[0]!.notify!.digest!;
    assert.deepEqual(
      [digest.key.source, digest.windowMs, digest.max, digest.update],
      ['{{ recipient }}', 600_000, 100, false],
    );
  });

  it('digest: rejects replace with it, a bad window, a max out of range', () => {
    assert.deepEqual(
      issuesOf(withAction('        digest: { key: k, window: 10m }\n        replace: { key: r }\n')),
      [
        'triggers.t.actions.0.digest: `digest` and `replace` cannot be used together: a digest already keeps every event of its key in one message (drop `replace`)',
      ],
    );
    assert.match(
      issuesOf(withAction('        digest: { key: k, window: soon }\n'))[0]!,
      /actions\.0\.digest\.window: "soon" is not a duration/,
    );
    assert.match(
      issuesOf(withAction('        digest: { key: k, window: 1m, max: 1001 }\n'))[0]!,
      /actions\.0\.digest\.max: a digest holds at most 1000 events/,
    );
    assert.match(
      issuesOf(withAction('        digest: { key: k, window: 1m, max: 1 }\n'))[0]!,
      /actions\.0\.digest\.max: a digest must be able to hold at least 2 events/,
    );
  });

  it('digest `update: true` only on a channel that can edit a message: slack yes, the inbox no', () => {
    assert.deepEqual(issuesOf(withAction('        digest: { key: k, window: 10m, update: true }\n')), [
      'triggers.t.actions.0.digest.update: `update: true` needs a channel that can edit a message it sent; channel "box" is of kind inbox, which cannot (slack can)',
    ]);
    const config = loadConfig(
      `channels: { chat: { kind: slack, token: xoxb-1 } }
triggers:
  t:
    actions:
      - { channel: chat, to: "#ops", text: "{{ events | size }}", digest: { key: k, window: 10m, update: true } }
`,
      registries,
      { env: {} },
    );
    assert.equal(config.triggers[0]!.actions[0]!.notify!.digest!.update, true);
    // A Slack channel without its token runs on its inbox fallback: still a Slack action.
    const fallback = loadConfig(
      `channels: { chat: { kind: slack, token: "\${SLACK_BOT_TOKEN}", fallback: { kind: inbox } } }
triggers:
  t:
    actions:
      - { channel: chat, to: "#ops", text: hi, digest: { key: k, window: 10m, update: true } }
`,
      registries,
      { env: {} },
    );
    assert.equal(fallback.triggers[0]!.actions[0]!.notify!.digest!.update, true);
  });

  it('compiles `quietHours`: local times in minutes, the zone as a template, UTC when it is left out', () => {
    const config = loadConfig(
      withAction(
        `        quietHours: { from: "22:00", to: "07:00", timezone: "{{ recipient.preferences.timezone | default: 'UTC' }}" }\n`,
      ),
      registries,
      { env: {} },
    );
    const quiet = config.triggers[0]!.actions[0]!.notify!.quietHours!;
    assert.deepEqual([quiet.fromMinute, quiet.toMinute], [22 * 60, 7 * 60]);
    assert.equal(quiet.timezone!.source, "{{ recipient.preferences.timezone | default: 'UTC' }}");
    const plain = loadConfig(withAction('        quietHours: { from: "12:00", to: "13:00" }\n'), registries, {
      env: {},
    });
    assert.equal(plain.triggers[0]!.actions[0]!.notify!.quietHours!.timezone, undefined);
  });

  it('refuses quiet hours that are no period, a time that is not HH:MM, and a missing `to`', () => {
    const same = issuesOf(withAction('        quietHours: { from: "22:00", to: "22:00" }\n'));
    assert.deepEqual(same, [
      'triggers.t.actions.0.quietHours.to: `from` and `to` are both 22:00: quiet hours need a period between them',
    ]);
    const late = issuesOf(withAction('        quietHours: { from: "25:00", to: "07:00" }\n'));
    assert.equal(late.length, 1);
    assert.match(
      late[0]!,
      /actions\.0\.quietHours\.from: "25:00" is not a local time HH:MM \(00:00 to 23:59\)/,
    );
    const missing = issuesOf(withAction('        quietHours: { from: "22:00" }\n'));
    assert.equal(missing.length, 1);
    assert.match(missing[0]!, /actions\.0\.quietHours\.to: required/);
    assert.match(
      issuesOf(withAction('        quietHours: { from: "22:00", to: "07:00", zone: UTC }\n'))[0]!,
      /actions\.0\.quietHours.*zone/,
    );
  });
});
