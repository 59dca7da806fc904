import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inboxChannel } from '../channels/inbox/index.js';
import { webhookChannel } from '../channels/webhook/index.js';
import type { ChannelKind, SourceKind } from '../engine/types.js';
import { builtInDialects } from '../filters/index.js';
import { httpSource } from '../sources/http/index.js';
import { ConfigError, loadConfig, type Registries } from './load.js';

const registries: Registries = {
  channels: [inboxChannel, webhookChannel] as ChannelKind[],
  sources: [httpSource] as SourceKind[],
  dialects: builtInDialects,
};

function issuesOf(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    loadConfig(yaml, registries, { env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.issues.map((i) => ({ path: i.path.join('.'), line: i.line, message: i.message }));
  }
  assert.fail('expected the config to be rejected');
}

describe('config loading', () => {
  it('accepts a minimal config and applies defaults', () => {
    const config = loadConfig(
      'channels: { box: { kind: inbox } }\ntriggers:\n  t:\n    actions: [{ channel: box }]\n',
      registries,
      { env: {} },
    );
    assert.equal(config.server.port, 8080);
    assert.equal(config.store.kind, 'sqlite');
    assert.equal(config.triggers[0]!.policy.maxAttempts, 8);
    assert.equal(config.triggers[0]!.policy.backoff.kind, 'exponential');
  });

  it('names the path and line of a wrong type inside a filter', () => {
    const issues = issuesOf(`channels:
  box: { kind: inbox }
triggers:
  t:
    filter:
      exact:
        type: 42
    actions: [{ channel: box }]
`);
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'triggers.t.filter.exact.type');
    assert.equal(issues[0]!.line, 7);
  });

  it('reports every problem at once, each with its line', () => {
    const issues = issuesOf(`server:
  port: "eighty"
channels:
  box: { kind: inbox, colour: blue }
  hook: { kind: carrier-pigeon }
triggers:
  a:
    actions: [{ channel: nowhere }]
  b:
    actions: []
`);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    assert.match(byPath['server.port']!.message, /expected number, got string/);
    assert.equal(byPath['server.port']!.line, 2);
    assert.ok(byPath['triggers.b.actions'], JSON.stringify(issues));
    assert.equal(byPath['triggers.b.actions']!.line, 10);
  });

  it('checks channel blocks and actions against their kind', () => {
    const issues = issuesOf(`channels:
  box: { kind: inbox, colour: blue }
  hook: { kind: carrier-pigeon }
  web: { kind: webhook, url: "http://x" }
  slow: { kind: webhook, url: "http://x", timeoutMs: -1 }
triggers:
  a:
    actions:
      - { channel: nowhere }
      - { channel: web, bogus: 1 }
`);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    assert.match(byPath['channels.box.colour']!.message, /unknown key/);
    assert.match(
      byPath['channels.hook.kind']!.message,
      /unknown channel kind "carrier-pigeon" \(known: inbox, webhook\)/,
    );
    assert.ok(byPath['channels.slow.timeoutMs']);
    assert.match(byPath['triggers.a.actions.0.channel']!.message, /unknown channel "nowhere"/);
    assert.equal(byPath['triggers.a.actions.0.channel']!.line, 9);
    assert.match(byPath['triggers.a.actions.1.bogus']!.message, /unknown key/);
  });

  it('rejects an unknown filter dialect and a template that does not parse, naming the trigger', () => {
    const issues = issuesOf(`channels: { box: { kind: inbox } }
triggers:
  broken:
    filter: { regex: { type: ".*" } }
    actions: [{ channel: box, text: "{{ event.data | nosuchfilter }}" }]
`);
    const paths = issues.map((i) => i.path);
    assert.ok(paths.includes('triggers.broken.filter.regex'), JSON.stringify(issues));
    const template = issues.find((i) => i.path === 'triggers.broken.actions.0.text');
    assert.ok(template, JSON.stringify(issues));
    assert.match(template.message, /nosuchfilter/);
  });

  it('interpolates ${VAR} and ${VAR:-default} and reports unset variables with their path', () => {
    const yaml = `server: { port: 9000 }
channels:
  hook: { kind: webhook, url: "\${HOOK_URL}", secret: "\${SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}" }
triggers:
  t: { actions: [{ channel: hook }] }
`;
    const config = loadConfig(yaml, registries, { env: { HOOK_URL: 'http://127.0.0.1:1/x' } });
    assert.deepEqual(config.channels[0]!.config, {
      url: 'http://127.0.0.1:1/x',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      timeoutMs: 10000,
      headers: {},
      concurrency: 16,
      allowHosts: [],
      allowPrivateNetworks: false,
    });
    const issues = issuesOf(yaml);
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'channels.hook.url');
    assert.equal(issues[0]!.message, '`channels.hook.url` is empty: set HOOK_URL');
  });

  it('a webhook signing secret must be `whsec_` + base64 of at least 24 bytes; the issue names the key, never the value', () => {
    const secretIssues = (secret: string) =>
      issuesOf(
        `channels:\n  hook: { kind: webhook, url: "http://127.0.0.1:1/x", secret: "\${S}" }\ntriggers:\n  t: { actions: [{ channel: hook }] }\n`,
        { S: secret },
      );
    const cases: [string, RegExp][] = [
      ['whsec_', /the signing secret is empty/],
      ['whsec_not base64!!', /is not valid base64/],
      ['whsec_c2hvcnQtc2VjcmV0', /decodes to 12 bytes; a signing key needs at least 24/],
      ['hunter2hunter2', /decodes to 10 bytes/],
    ];
    for (const [secret, message] of cases) {
      const issues = secretIssues(secret);
      assert.deepEqual(
        issues.map((i) => i.path),
        ['channels.hook.secret'],
        secret,
      );
      assert.match(issues[0]!.message, message);
      assert.ok(
        !issues[0]!.message.includes(secret.slice('whsec_'.length) || '\0'),
        'the secret is not echoed',
      );
    }
    const key = Buffer.alloc(24, 7).toString('base64');
    for (const ok of [
      `whsec_${key}`,
      key,
      `whsec_${Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '')}`,
    ]) {
      const config = loadConfig(
        `channels:\n  hook: { kind: webhook, url: "http://127.0.0.1:1/x", secret: "${ok}" }\ntriggers:\n  t: { actions: [{ channel: hook }] }\n`,
        registries,
        { env: {} },
      );
      assert.equal((config.channels[0]!.config as { secret: string }).secret, ok);
    }
  });

  it('a value from the environment cannot change the YAML structure', () => {
    const config = loadConfig(
      'channels: { box: { kind: inbox } }\ntriggers:\n  t: { actions: [{ channel: box, to: "${TO}" }] }\n',
      registries,
      { env: { TO: 'a\nkind: webhook' } },
    );
    assert.equal(config.channels[0]!.kind.kind, 'inbox');
  });

  it('falls back to the fallback block when a channel variable is unset', () => {
    const yaml = `channels:
  hook:
    kind: webhook
    url: \${HOOK_URL}
    fallback: { kind: inbox }
triggers:
  t: { actions: [{ channel: hook }] }
`;
    const fallback = loadConfig(yaml, registries, { env: {} });
    assert.equal(fallback.channels[0]!.kind.kind, 'inbox');
    assert.equal(fallback.channels[0]!.fallbackReason, 'HOOK_URL not set');
    const real = loadConfig(yaml, registries, { env: { HOOK_URL: 'http://127.0.0.1:9/' } });
    assert.equal(real.channels[0]!.kind.kind, 'webhook');
    assert.equal(real.channels[0]!.fallbackReason, undefined);
  });

  it('accepts a rateLimit on a channel of any kind, burst defaulting to perSecond (at least 1)', () => {
    const config = loadConfig(
      `channels:
  box: { kind: inbox, rateLimit: { perSecond: 2.5 } }
  hook: { kind: webhook, url: "http://x", concurrency: 4, rateLimit: { perSecond: 50, burst: 100 } }
  trickle: { kind: inbox, rateLimit: { perSecond: 0.2 } }
  free: { kind: inbox }
triggers:
  t: { actions: [{ channel: box }] }
`,
      registries,
      { env: {} },
    );
    const byName = Object.fromEntries(config.channels.map((c) => [c.name, c]));
    assert.deepEqual(byName.box!.rateLimit, { perSecond: 2.5, burst: 2.5 });
    assert.deepEqual(byName.hook!.rateLimit, { perSecond: 50, burst: 100 });
    assert.deepEqual(byName.trickle!.rateLimit, { perSecond: 0.2, burst: 1 });
    assert.equal(byName.free!.rateLimit, undefined);
    // The kind's own config is parsed without it, as before.
    assert.equal((byName.hook!.config as { concurrency: number }).concurrency, 4);
    assert.equal('rateLimit' in (byName.hook!.config as object), false);
  });

  it('rejects a bad rateLimit with its path, and a rateLimit on a source', () => {
    const issues = issuesOf(`sources:
  in: { kind: http, rateLimit: { perSecond: 1 } }
channels:
  zero: { kind: inbox, rateLimit: { perSecond: 0 } }
  tiny: { kind: inbox, rateLimit: { perSecond: 5, burst: 0.5 } }
  word: { kind: inbox, rateLimit: { perSecond: fast } }
  typo: { kind: inbox, rateLimit: { perSecnd: 5 } }
  flat: { kind: webhook, url: "http://x", rateLimit: 5, colour: blue }
triggers:
  t: { actions: [{ channel: zero }] }
`);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    assert.match(byPath['sources.in.rateLimit']!.message, /unknown key/);
    assert.match(byPath['channels.zero.rateLimit.perSecond']!.message, /must be a positive number/);
    assert.equal(byPath['channels.zero.rateLimit.perSecond']!.line, 4);
    assert.match(byPath['channels.tiny.rateLimit.burst']!.message, /must be at least 1/);
    assert.match(byPath['channels.word.rateLimit.perSecond']!.message, /expected number, got string/);
    assert.match(byPath['channels.typo.rateLimit.perSecnd']!.message, /unknown key/);
    assert.match(byPath['channels.typo.rateLimit.perSecond']!.message, /required/);
    assert.match(byPath['channels.flat.rateLimit']!.message, /expected object, got number/);
    assert.match(byPath['channels.flat.colour']!.message, /unknown key/, 'the kind is still checked');
  });

  it('a fallback block replaces the rateLimit with its own', () => {
    const yaml = `channels:
  hook:
    kind: webhook
    url: \${HOOK_URL}
    rateLimit: { perSecond: 1 }
    fallback: { kind: inbox, rateLimit: { perSecond: 100 } }
  plain:
    kind: webhook
    url: \${HOOK_URL}
    rateLimit: { perSecond: 1 }
    fallback: { kind: inbox }
triggers:
  t: { actions: [{ channel: hook }, { channel: plain }] }
`;
    const fallback = loadConfig(yaml, registries, { env: {} });
    assert.deepEqual(fallback.channels[0]!.rateLimit, { perSecond: 100, burst: 100 });
    assert.equal(fallback.channels[1]!.rateLimit, undefined);
    const real = loadConfig(yaml, registries, { env: { HOOK_URL: 'http://127.0.0.1:9/' } });
    assert.deepEqual(real.channels[0]!.rateLimit, { perSecond: 1, burst: 1 });
  });

  it('reports YAML syntax errors with their line', () => {
    const issues = issuesOf('channels:\n  box: { kind: inbox\ntriggers: {}\n');
    assert.ok(issues[0]!.line);
    assert.match(issues[0]!.message, /^YAML:/);
  });
});
