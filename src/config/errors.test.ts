import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { registries } from '../plugins.js';
import { ConfigError, formatIssue, loadConfig } from './load.js';
import { coerceScalar } from './part.js';
import { closestMatch, editDistance } from './suggest.js';

function rejection(yaml: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    loadConfig(yaml, registries, { env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

/** Each issue as the user reads it, without the position. */
function lines(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  return rejection(yaml, env).issues.map((i) => formatIssue({ ...i, line: undefined }));
}

const slackRecipe = `sources:
  shop: { kind: postgres-cdc, url: "\${INVENTORY_DATABASE_URL}", tables: [public.products] }
slack:
  token: \${SLACK_BOT_TOKEN}
  signingSecret: \${SLACK_SIGNING_SECRET}
channels:
  slack: { kind: slack, token: "\${SLACK_BOT_TOKEN}" }
triggers:
  price-changed:
    descripton: typo in the trigger
    actions:
      - channel: slack
        tex: "y"
`;

describe('config errors in the user’s words', () => {
  it('reports every problem in one pass: unset variables, unknown keys in triggers and actions', () => {
    assert.deepEqual(lines(slackRecipe), [
      '`sources.shop.url` is empty: set INVENTORY_DATABASE_URL',
      '`slack.token` is empty: set SLACK_BOT_TOKEN',
      '`slack.signingSecret` is empty: set SLACK_SIGNING_SECRET',
      '`channels.slack.token` is empty: set SLACK_BOT_TOKEN',
      'unknown key `descripton` in triggers.price-changed (did you mean `description`?)',
      'unknown key `tex` in triggers.price-changed.actions[0] (did you mean `text`?)',
    ]);
  });

  it('ends with the variables to set, and never prints a variable’s value', () => {
    const err = rejection(slackRecipe, { SLACK_SIGNING_SECRET: 'sig-s3cret' });
    assert.match(
      err.message,
      /\nset these environment variables: INVENTORY_DATABASE_URL, SLACK_BOT_TOKEN$/,
      err.message,
    );
    assert.doesNotMatch(err.message, /sig-s3cret/);
  });

  it('a variable set to something the schema refuses is named, its value is not', () => {
    assert.deepEqual(
      lines(
        'channels:\n  hook: { kind: webhook, url: "${HOOK_URL}" }\ntriggers: { t: { actions: [{ channel: hook }] } }\n',
        { HOOK_URL: 'not-a-url-s3cret' },
      ).map((l) => l.replace(/^channels\.hook\.url: .*\(/, 'channels.hook.url: … (')),
      ['channels.hook.url: … (the value comes from HOOK_URL)'],
    );
  });

  it('a variable set but empty, or an empty default, reads as empty too', () => {
    assert.deepEqual(lines('slack: { token: "${SLACK_BOT_TOKEN:-}", signingSecret: x }\n'), [
      '`slack.token` is empty: set SLACK_BOT_TOKEN',
    ]);
    assert.deepEqual(
      lines('slack: { token: "${SLACK_BOT_TOKEN}", signingSecret: x }\n', { SLACK_BOT_TOKEN: '' }),
      ['`slack.token` is empty: set SLACK_BOT_TOKEN'],
    );
  });

  it('a variable inside a longer string that is unset says how to give a default', () => {
    assert.deepEqual(
      lines(
        'channels:\n  hook: { kind: webhook, url: "https://${HOOK_HOST}/h" }\ntriggers: { t: { actions: [{ channel: hook }] } }\n',
      ),
      ['`channels.hook.url` uses HOOK_HOST, not set: set it, or write ${HOOK_HOST:-default} for a default'],
    );
  });

  it('a block whose variables are unset is still checked for its other mistakes', () => {
    assert.deepEqual(
      lines(
        'channels:\n  s: { kind: slack, token: "${SLACK_BOT_TOKEN}", concurency: 4 }\ntriggers: { t: { actions: [{ channel: s, text: hi, thred: x }] } }\n',
      ),
      [
        '`channels.s.token` is empty: set SLACK_BOT_TOKEN',
        'unknown key `concurency` in channels.s (did you mean `concurrency`?)',
        'unknown key `thred` in triggers.t.actions[0] (did you mean `thread`?)',
      ],
    );
  });

  it('an action of a channel that falls back is judged by the kind it was written for', () => {
    const yaml = `channels:
  s: { kind: slack, token: "\${SLACK_BOT_TOKEN}", fallback: { kind: inbox } }
triggers:
  t:
    actions:
      - { channel: s, text: hi, priority: 3 }
`;
    assert.deepEqual(lines(yaml), [
      'unknown key `priority` in triggers.t.actions[0] (known: text, blocks, thread, update, channel, to, followUp, dedupe, replace, throttle, digest, delay, quietHours)',
    ]);
    // Without the stray key the same config runs, on the inbox.
    const config = loadConfig(yaml.replace(', priority: 3', ''), registries, { env: {} });
    assert.equal(config.channels[0]!.kind.kind, 'inbox');
  });

  it('an inbox action takes extra keys as message fields, but not a near miss of a known key', () => {
    const yaml = (key: string) =>
      `channels: { box: { kind: inbox } }\ntriggers: { t: { actions: [{ channel: box, ${key}: x }] } }\n`;
    assert.doesNotThrow(() => loadConfig(yaml('priority'), registries, { env: {} }));
    assert.deepEqual(lines(yaml('subjet')), [
      'unknown key `subjet` in triggers.t.actions[0] (did you mean `subject`?)',
    ]);
  });

  it('unknown keys at the top, in a block, in a recipient and unknown kinds and channels are suggested', () => {
    assert.deepEqual(
      lines(`servr: { port: 1 }
channels:
  hook: { kind: webhok, url: "http://x" }
  box: { kind: inbox }
triggers:
  t:
    actions:
      - { channel: bx }
      - { channel: box, to: { subscribersOf: x, wher: y } }
`).map((l) => l.replace(/known: [^)]*\)/, 'known: …)')),
      [
        'unknown key `servr` in (root) (did you mean `server`?)',
        'channels.hook.kind: unknown channel kind "webhok" (did you mean "webhook"? known: …)',
        'triggers.t.actions[0].channel: unknown channel "bx" (did you mean "box"?) (defined: hook, box)',
        'unknown key `wher` in triggers.t.actions[1].to (did you mean `where`?)',
      ],
    );
  });

  it('a trigger with its own issue still has its actions checked', () => {
    assert.deepEqual(
      lines(`channels: { box: { kind: inbox } }
triggers:
  t:
    delivery: { maxAttempts: 0 }
    actions:
      - { channel: nowhere }
      - { channel: box, to: 42 }
      - { channel: box, subjet: x }
`),
      [
        'triggers.t.delivery.maxAttempts: Too small: expected number to be >=1',
        'triggers.t.actions[0].channel: unknown channel "nowhere" (defined: box)',
        'triggers.t.actions[1].to: expected string or array or object, got number',
        'unknown key `subjet` in triggers.t.actions[2] (did you mean `subject`?)',
      ],
    );
  });

  it('issues are listed in the order of the file’s lines', () => {
    const err = rejection(`triggers:
  t: { actions: [{ channel: ghost }] }
server:
  port: "eighty"
`);
    assert.deepEqual(
      err.issues.map((i) => i.line),
      [2, 4],
    );
  });
});

describe('interpolated values take the type the schema asks for', () => {
  const slack = (extra: string) =>
    `channels:\n  s: { kind: slack, token: xoxb-1234, ${extra} }\ntriggers: { t: { actions: [{ channel: s, text: hi }] } }\n`;

  it('a number: from a default, from the variable, and inside server', () => {
    const byDefault = loadConfig(slack('concurrency: "${N:-32}"'), registries, { env: {} });
    assert.equal((byDefault.channels[0]!.config as { concurrency: number }).concurrency, 32);
    const fromVariable = loadConfig(slack('concurrency: "${N:-32}"'), registries, { env: { N: '8' } });
    assert.equal((fromVariable.channels[0]!.config as { concurrency: number }).concurrency, 8);
    const server = loadConfig('server:\n  port: ${PORT:-9090}\n  publicMetrics: ${PM:-true}\n', registries, {
      env: { PORT: '9191' },
    });
    assert.equal(server.server.port, 9191);
    assert.equal(server.server.publicMetrics, true);
  });

  it('a boolean in an action-independent block and a number in a rate limit', () => {
    const config = loadConfig(
      'channels:\n  box: { kind: inbox, rateLimit: { perSecond: "${RATE}" } }\nserver: { allowUnauthenticatedAdmin: "${OPEN:-FALSE}" }\n',
      registries,
      { env: { RATE: '0.5' } },
    );
    assert.equal(config.channels[0]!.rateLimit?.perSecond, 0.5);
    assert.equal(config.server.allowUnauthenticatedAdmin, false);
  });

  it('a string field keeps a numeric variable as a string', () => {
    const config = loadConfig('channels:\n  s: { kind: slack, token: "${SLACK_BOT_TOKEN}" }\n', registries, {
      env: { SLACK_BOT_TOKEN: '1234' },
    });
    assert.equal((config.channels[0]!.config as { token: string }).token, '1234');
  });

  it('a value that is not one is an issue naming the variable; a quoted literal is not coerced', () => {
    assert.deepEqual(lines(slack('concurrency: "${N}"'), { N: 'lots' }), [
      'channels.s.concurrency: expected number, got string (the value comes from N)',
    ]);
    assert.deepEqual(lines('server: { port: "8080" }\n'), ['server.port: expected number, got string']);
  });

  it('coerceScalar reads decimal numbers and true/false, and nothing else', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        // What the text says: -0 is written "0".
        assert.equal(coerceScalar(String(n), 'number'), Number(String(n)));
      }),
    );
    fc.assert(
      fc.property(fc.integer(), (n) => {
        assert.equal(coerceScalar(` ${n} `, 'int'), n);
      }),
    );
    fc.assert(
      fc.property(fc.string(), (text) => {
        const value = coerceScalar(text, 'number');
        if (value !== undefined) assert.ok(typeof value === 'number' && Number.isFinite(value));
        const flag = coerceScalar(text, 'boolean');
        if (flag !== undefined) assert.match(text.trim(), /^(true|false)$/i);
      }),
    );
    for (const text of ['', '0x1F', '1_000', 'NaN', 'Infinity', '1e999', '12px'])
      assert.equal(coerceScalar(text, 'number'), undefined, text);
    assert.equal(coerceScalar('TRUE', 'boolean'), true);
    assert.equal(coerceScalar('yes', 'boolean'), undefined);
  });
});

describe('did-you-mean', () => {
  it('edit distance is a distance', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        (a, b, c) => {
          assert.equal(editDistance(a, a), 0);
          assert.equal(editDistance(a, b), editDistance(b, a));
          assert.ok(editDistance(a, c) <= editDistance(a, b) + editDistance(b, c));
          assert.ok(editDistance(a, b) <= Math.max(a.length, b.length));
        },
      ),
    );
  });

  it('suggests a near key, and nothing for a word far from all of them', () => {
    assert.equal(closestMatch('delai', ['delay', 'text']), 'delay');
    assert.equal(closestMatch('Text', ['text', 'blocks']), 'text');
    assert.equal(closestMatch('colour', ['concurrency', 'timeoutMs']), undefined);
  });
});
