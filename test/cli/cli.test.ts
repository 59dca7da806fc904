import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { type HeraldProcess, repoRoot, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

const run = promisify(execFile);

/** Runs the CLI from its sources through tsx, or with `compiled`, bin/herald.js as users run it. */
async function herald(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 0, { compiled = false } = {}) {
  const script = compiled
    ? [join(repoRoot, 'bin/herald.js')]
    : ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts')];
  try {
    const { stdout, stderr } = await run(process.execPath, [...script, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      timeout: timeoutMs,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('herald CLI', () => {
  const dir = tempDir('herald-cli-');
  after(() => dir.remove());

  it('--version and --help answer without loading the app, the config loader or any plugin', async () => {
    // A load hook names every Herald module the command reads; neither answer needs the server.
    const watch = `data:text/javascript,${encodeURIComponent(
      'import { registerHooks } from "node:module";' +
        'registerHooks({ load(url, context, next) { if (url.includes("/src/")) process.stderr.write("loaded " + url + "\\n"); return next(url, context); } });',
    )}`;
    for (const flag of ['--version', '--help']) {
      const { stdout, stderr } = await run(
        process.execPath,
        ['--import', 'tsx', '--import', watch, join(repoRoot, 'src/cli/main.ts'), flag],
        { cwd: repoRoot, env: { PATH: process.env.PATH, HOME: process.env.HOME } },
      );
      assert.match(stdout, flag === '--version' ? /^\d+\.\d+\.\d+/ : /Usage: herald/);
      const loaded = stderr.match(/^loaded .*$/gm) ?? [];
      assert.ok(
        loaded.some((l) => l.includes('/src/cli/main.ts')),
        'the hook sees Herald modules',
      );
      for (const heavy of ['/src/app.ts', '/src/config/', '/src/plugins.ts', '/src/store/', '/src/server/'])
        assert.ok(!loaded.some((l) => l.includes(heavy)), `${flag} loaded ${heavy}:\n${loaded.join('\n')}`);
    }
  });

  it('start loads only the client libraries its config uses: a webhook-only Herald loads no Slack, SMTP, PostgreSQL or NATS client', async () => {
    // Each is several MB of a running process's memory.
    const watch = `data:text/javascript,${encodeURIComponent(
      'import { registerHooks } from "node:module";' +
        'registerHooks({ load(url, context, next) { if (url.includes("/node_modules/")) process.stderr.write("loaded " + url + "\\n"); return next(url, context); } });',
    )}`;
    const config = join(dir.path, 'webhook-only.yaml');
    writeFileSync(
      config,
      'channels:\n  hook: { kind: webhook, url: http://127.0.0.1:9/hook }\ntriggers:\n  all:\n    actions: [{ channel: hook }]\n',
    );
    const proc = await spawnHerald(
      ['--config', config, '--data', join(dir.path, 'webhook-only'), '--port', '0'],
      {},
      ['--import', watch],
    );
    await proc.kill();
    const loaded = proc.output.join('').match(/^loaded .*$/gm) ?? [];
    assert.ok(
      loaded.some((l) => l.includes('/node_modules/undici/')),
      'the hook sees the webhook channel’s HTTP client',
    );
    for (const unused of [
      'nodemailer',
      '@slack/web-api',
      'pg',
      'pg-logical-replication',
      '@nats-io/jetstream',
    ])
      assert.ok(
        !loaded.some((l) => l.includes(`/node_modules/${unused}/`)),
        `loaded ${unused}:\n${loaded.filter((l) => l.includes(unused)).join('\n')}`,
      );
  });

  it('validate accepts the demo config', async () => {
    const res = await herald(['validate', 'examples/notify-router/herald.yaml']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /ok \(1 source\(s\), 2 channel\(s\), 2 trigger\(s\)\)/);
  });

  it('validate prints the path and line of every error and exits 2', async () => {
    const file = join(dir.path, 'broken.yaml');
    writeFileSync(
      file,
      [
        'channels:',
        '  box: { kind: inbox }',
        '  hook: { kind: webhook, url: 12 }',
        'triggers:',
        '  first:',
        '    filter: { exact: { type: 7 } }',
        '    actions: [{ channel: box }]',
        '  second:',
        '    actions: [{ channel: ghost }]',
        '',
      ].join('\n'),
    );
    const res = await herald(['validate', file]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /channels\.hook\.url: expected string, got number \(.*broken\.yaml:3:\d+\)/);
    assert.match(
      res.stderr,
      /triggers\.first\.filter\.exact\.type: expected string, got number \(.*broken\.yaml:6:\d+\)/,
    );
    assert.match(
      res.stderr,
      /triggers\.second\.actions\[0\]\.channel: unknown channel "ghost" .*\(.*broken\.yaml:9:\d+\)/,
    );
  });

  it('validate names a webhook secret too short to sign with, without printing it', async () => {
    const file = join(dir.path, 'weak-secret.yaml');
    writeFileSync(
      file,
      'channels:\n  hook: { kind: webhook, url: "https://example.com/h", secret: "whsec_c2hvcnQtc2VjcmV0" }\ntriggers:\n  t: { actions: [{ channel: hook }] }\n',
    );
    const res = await herald(['validate', file]);
    assert.equal(res.code, 2);
    assert.match(
      res.stderr,
      /channels\.hook\.secret: the signing secret decodes to 12 bytes; a signing key needs at least 24/,
    );
    assert.doesNotMatch(res.stderr, /c2hvcnQtc2VjcmV0/);
  });

  it('validate names every variable a recipe needs in one pass, and where each is used', async () => {
    const res = await herald(['validate', 'examples/inventory-alerts/herald.yaml']);
    assert.equal(res.code, 2);
    const lines = res.stderr.split('\n');
    const expected = [
      /^ {2}- `sources\.shop\.url` is empty: set INVENTORY_DATABASE_URL \(.*herald\.yaml:\d+:\d+\)$/,
      /^ {2}- `slack\.token` is empty: set SLACK_BOT_TOKEN \(/,
      /^ {2}- `slack\.signingSecret` is empty: set SLACK_SIGNING_SECRET \(/,
      /^ {2}- `channels\.slack\.token` is empty: set SLACK_BOT_TOKEN \(/,
      /^set these environment variables: INVENTORY_DATABASE_URL, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET$/,
    ];
    assert.equal(lines.filter(Boolean).length, expected.length + 1, res.stderr);
    for (const [i, pattern] of expected.entries()) assert.match(lines[i + 1]!, pattern, res.stderr);
    assert.doesNotMatch(res.stderr, /Too small|>=1 characters/);
  });

  it('start reports the same problems, all at once, before opening anything', async () => {
    const file = join(dir.path, 'typos.yaml');
    writeFileSync(
      file,
      [
        'channels:',
        '  slack: { kind: slack, token: "${SLACK_BOT_TOKEN}", concurrency: "${SLACK_CONCURRENCY:-4}" }',
        'triggers:',
        '  t:',
        '    actions:',
        '      - { channel: slack, tex: "y" }',
        '',
      ].join('\n'),
    );
    const res = await herald(['start', '--config', file, '--port', '0', '--data', join(dir.path, 'data')]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /`channels\.slack\.token` is empty: set SLACK_BOT_TOKEN \(.*typos\.yaml:2:/);
    assert.match(
      res.stderr,
      /unknown key `tex` in triggers\.t\.actions\[0\] \(did you mean `text`\?\) \(.*typos\.yaml:6:/,
    );
    assert.doesNotMatch(res.stderr, /concurrency/, 'the interpolated default is a number');
  });

  it('validate names a missing file', async () => {
    const res = await herald(['validate', join(dir.path, 'missing.yaml')]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /cannot read config .*missing\.yaml: ENOENT/);
  });

  it('schema prints a JSON Schema that accepts the demo config and rejects a typo', async () => {
    const res = await herald(['schema']);
    assert.equal(res.code, 0, res.stderr);
    const schema = JSON.parse(res.stdout);
    const ajv = new Ajv2020({ strict: false });
    const validate = ajv.compile(schema);
    const demo: Record<string, unknown> = parse(
      (await import('node:fs')).readFileSync(join(repoRoot, 'examples/notify-router/herald.yaml'), 'utf8'),
    );
    assert.ok(validate(demo), JSON.stringify(validate.errors));
    assert.equal(validate({ ...demo, servr: {} }), false);
    assert.equal(schema.properties.channels.additionalProperties.oneOf.length > 2, true);
  });

  it('--help explains the commands', async () => {
    const res = await herald(['--help']);
    assert.match(res.stdout, /start .*Run Herald/s);
    assert.match(res.stdout, /validate/);
    const start = await herald(['start', '--help']);
    assert.match(start.stdout, /--data <dir>/);
    assert.match(start.stdout, /HERALD_ADMIN_TOKEN/);
    assert.match(start.stdout, /HERALD_INGEST_TOKEN/);
    assert.match(start.stdout, /--insecure-admin/);
  });

  it('start refuses a non-loopback address without an admin token, and says how to insist', async () => {
    const res = await herald(
      ['start', '--host', '0.0.0.0', '--port', '0', '--data', join(dir.path, 'open-data')],
      {},
      30_000,
    );
    assert.equal(res.code, 1, res.stdout);
    assert.match(res.stderr, /refusing to listen on 0\.0\.0\.0 without an admin token/);
    assert.match(res.stderr, /--insecure-admin/);
  });

  it('doctor prints a table of what works and what does not, with the fix, and exits 1 on a failure', async () => {
    const sink = await startHttpSink();
    const file = join(dir.path, 'doctor.yaml');
    writeFileSync(
      file,
      `channels:\n  up: { kind: webhook, url: "${sink.url}" }\n  down: { kind: webhook, url: "http://127.0.0.1:1/x" }\n  box: { kind: inbox }\ntriggers:\n  t: { actions: [{ channel: box }] }\n`,
    );
    const res = await herald(['doctor', '--config', file, '--data', join(dir.path, 'doctor-data')]);
    await sink.close();
    assert.equal(res.code, 1);
    assert.match(res.stdout, /store \(sqlite\)\s+ok/);
    assert.match(res.stdout, /bus \(embedded\)\s+ok\s+in this process/);
    assert.match(res.stdout, /channel up \(webhook\)\s+ok\s+127\.0\.0\.1:\d+ accepts connections/);
    assert.match(res.stdout, /channel down \(webhook\)\s+FAIL\s+127\.0\.0\.1:1: ECONNREFUSED/);
    assert.match(res.stdout, /fix: check that 127\.0\.0\.1:1 is up/);
    const ok = await herald(['doctor', '--data', join(dir.path, 'doctor-data-2')]);
    assert.equal(ok.code, 0, ok.stdout);
  });

  it('start refuses an unknown role', async () => {
    const res = await herald(['start', '--role', 'ingest,cook']);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /unknown role "cook"/);
  });
});

describe('bin/herald.js start (the compiled CLI; build first)', () => {
  const dir = tempDir('herald-bin-');
  after(() => dir.remove());

  /**
   * Starts bin/herald.js with a config, runs `whileUp` against the process that listens, and
   * answers with that process's node options and the MALLOC_ARENA_MAX it was started with (it has
   * the same pid as the one spawned).
   */
  async function started(
    env: NodeJS.ProcessEnv,
    {
      config = 'channels:\n  out: { kind: inbox }\n',
      nodeArgs = [] as string[],
      whileUp = async (_url: string) => {},
    } = {},
  ): Promise<{ flags: string[]; arenas: string | undefined }> {
    const configFile = join(dir.path, 'herald.yaml');
    writeFileSync(configFile, config);
    const herald = await spawnHerald(
      ['--config', configFile, '--data', dir.path, '--port', '0'],
      env,
      nodeArgs,
      {
        compiled: true,
      },
    );
    try {
      const argv = readFileSync(`/proc/${herald.child.pid}/cmdline`, 'utf8').split('\0');
      const startedWith = readFileSync(`/proc/${herald.child.pid}/environ`, 'utf8').split('\0');
      await whileUp(herald.url);
      return {
        flags: argv.slice(1, argv.indexOf(join(repoRoot, 'bin/herald.js'))),
        arenas: startedWith.find((v) => v.startsWith('MALLOC_ARENA_MAX='))?.slice('MALLOC_ARENA_MAX='.length),
      };
    } finally {
      await herald.kill();
    }
  }

  it('caps V8’s young generation, old-generation growth and malloc arenas in the same process; the user’s own values win', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, async () => {
    assert.deepEqual(await started({}), {
      flags: ['--max-semi-space-size=8', '--heap-growing-percent=50'],
      arenas: '2',
    });
    // The user's own values are kept: no second flag, and no restart once nothing is left to set.
    assert.deepEqual(await started({ NODE_OPTIONS: '--max-semi-space-size=32' }), {
      flags: ['--heap-growing-percent=50'],
      arenas: '2',
    });
    // Node takes no V8 growth flag from NODE_OPTIONS, hence a variable of Herald's; 0 is V8's own choice.
    assert.deepEqual(await started({ HERALD_HEAP_GROWING_PERCENT: '0' }), {
      flags: ['--max-semi-space-size=8', '--heap-growing-percent=0'],
      arenas: '2',
    });
    assert.deepEqual(
      await started(
        { NODE_OPTIONS: '--max_semi_space_size=32', MALLOC_ARENA_MAX: '4' },
        { nodeArgs: ['--heap-growing-percent=100'] },
      ),
      { flags: ['--heap-growing-percent=100'], arenas: '4' },
    );
  });

  it('refuses a HERALD_HEAP_GROWING_PERCENT that is not a whole number, saying which', async () => {
    const env = { HERALD_HEAP_GROWING_PERCENT: '1.5' };
    // A start that accepted the value would listen until the timeout: the test fails, not hangs.
    const res = await herald(['start', '--data', dir.path, '--port', '0'], env, 30_000, { compiled: true });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /HERALD_HEAP_GROWING_PERCENT must be a whole number from 0 .* not "1\.5"/);
    // Only `start` reads it: other commands run as before.
    const version = await herald(['--version'], env, 30_000, { compiled: true });
    assert.equal(version.code, 0);
    assert.match(version.stdout, /\d+\.\d+\.\d+/);
  });

  it('does not hand the malloc arena setting it made to the jobs Herald runs', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, async () => {
    const out = join(dir.path, 'job-env.txt');
    const config = [
      'sources:',
      '  web: { kind: http, routes: [{ path: /run, event: { type: run } }] }',
      'channels:',
      // Jobs get only the variables listed; these would show the setting had it been left in place.
      '  job: { kind: job, inheritEnv: [PATH, MALLOC_ARENA_MAX, HERALD_SET_MALLOC_ARENA_MAX] }',
      'triggers:',
      `  run: { actions: [{ channel: job, command: /bin/sh, args: ["-c", "env > ${out}"] }] }`,
      '',
    ].join('\n');
    const { arenas } = await started(
      {},
      {
        config,
        whileUp: async (url) => {
          const res = await fetch(`${url}/run`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
          });
          assert.equal(res.status, 202);
          const deadline = Date.now() + 15_000;
          while (!readFileSync(out, { encoding: 'utf8', flag: 'a+' }).includes('PATH=')) {
            if (Date.now() > deadline) throw new Error('the job did not run');
            await new Promise((r) => setTimeout(r, 50));
          }
        },
      },
    );
    assert.equal(arenas, '2');
    const jobEnv = readFileSync(out, 'utf8');
    assert.doesNotMatch(jobEnv, /^MALLOC_ARENA_MAX=/m);
    assert.doesNotMatch(jobEnv, /^HERALD_SET_MALLOC_ARENA_MAX=/m);
  });
});

describe('herald send and dlq against a running Herald', () => {
  const dir = tempDir('herald-cli-run-');
  let sink: HttpSink;
  let proc: HeraldProcess;
  before(async () => {
    sink = await startHttpSink();
    sink.setDefault({ status: 422, headers: { 'content-type': 'text/plain' }, body: 'no thanks' });
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `channels:\n  hook: { kind: webhook, url: ${sink.url} }\ntriggers:\n  all:\n    actions: [{ channel: hook }]\n`,
    );
    proc = await spawnHerald([
      '--config',
      join(dir.path, 'herald.yaml'),
      '--data',
      join(dir.path, 'data'),
      '--port',
      '0',
    ]);
  });
  after(async () => {
    await proc.kill();
    await sink.close();
    dir.remove();
  });

  it('send publishes an event; dlq list shows its dead letter; dlq replay --all sends it again', async () => {
    const sent = await herald([
      'send',
      '--url',
      proc.url,
      '--type',
      'cli.test',
      '--subject',
      'x',
      '--data',
      '{"a":1}',
      '--id',
      'cli-1',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(JSON.parse(sent.stdout), { id: 'cli-1', duplicate: false });
    await sink.waitFor(1);
    assert.deepEqual(JSON.parse(sink.requests[0]!.body).data, { a: 1 });

    let list = await herald(['dlq', 'list', '--url', proc.url]);
    for (let i = 0; i < 50 && !list.stdout.includes('HTTP 422'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      list = await herald(['dlq', 'list', '--url', proc.url]);
    }
    assert.match(list.stdout, /all → hook\tevent cli-1\tHTTP 422: no thanks/);

    sink.setDefault({ status: 200 });
    const replay = await herald(['dlq', 'replay', '--all', '--channel', 'hook', '--url', proc.url]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(JSON.parse(replay.stdout).replayed, 1);
    await sink.waitFor(2);
    const empty = await herald(['dlq', 'list', '--url', proc.url]);
    assert.match(empty.stdout, /empty/);
  });

  it('explain says why an event notified (and --json gives the answer); dlq replay --as-recorded says how it replayed', async () => {
    sink.setDefault({ status: 422, headers: { 'content-type': 'text/plain' }, body: 'no thanks' });
    const sent = await herald(['send', '--url', proc.url, '--type', 'cli.explain', '--id', 'cli-2']);
    assert.equal(sent.code, 0, sent.stderr);
    let text = await herald(['explain', 'cli-2', '--url', proc.url]);
    for (let i = 0; i < 50 && !text.stdout.includes('dead-lettered'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = await herald(['explain', 'cli-2', '--url', proc.url]);
    }
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Event cli-2 \(cli\.explain\) from herald-cli, #\d+ in the log$/m);
    assert.match(text.stdout, /^Evaluated against the current config\./m);
    assert.match(text.stdout, /^✓ all: matched$/m);
    assert.match(text.stdout, /^ {4}action 0 → hook \(no recipient\)$/m);
    assert.match(text.stdout, /^ {6}\(no recipient\): dead-lettered after 1 attempt: HTTP 422: no thanks$/m);

    const json = await herald(['explain', 'cli-2', '--json', '--url', proc.url]);
    assert.equal(json.code, 0, json.stderr);
    const answer = JSON.parse(json.stdout);
    assert.equal(answer.evaluatedAgainst, 'current-config');
    const delivery = answer.triggers[0].actions[0].recipients[0].delivery;
    assert.equal(delivery.fate, 'dead');

    sink.setDefault({ status: 200 });
    const replay = await herald(['dlq', 'replay', String(delivery.id), '--as-recorded', '--url', proc.url]);
    assert.equal(replay.code, 0, replay.stderr);
    const replayed = JSON.parse(replay.stdout);
    assert.equal(replayed.mode, 'as-recorded');
    assert.match(replayed.message, /replayed as recorded/);

    const missing = await herald(['explain', 'no-such-event', '--url', proc.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /herald explain: no event with id "no-such-event"/);
  });

  it('send without --type explains what is missing', async () => {
    const res = await herald(['send', '--url', proc.url]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--type is required/);
  });
});

describe('herald send with an ingest token, dlq replay ID without an admin token', () => {
  const dir = tempDir('herald-cli-tokens-');
  let sink: HttpSink;
  let proc: HeraldProcess;
  const tokens = { HERALD_INGEST_TOKEN: 'cli-ingest-tok' };
  before(async () => {
    sink = await startHttpSink();
    sink.setDefault({ status: 422 });
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `channels:\n  hook: { kind: webhook, url: ${sink.url} }\ntriggers:\n  all:\n    actions: [{ channel: hook }]\n    delivery: { maxAttempts: 1 }\n`,
    );
    proc = await spawnHerald(
      ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'],
      tokens,
    );
  });
  after(async () => {
    await proc.kill();
    await sink.close();
    dir.remove();
  });

  it('send uses HERALD_INGEST_TOKEN; dlq replay ID sends the JSON the admin API asks for', async () => {
    const args = ['send', '--url', proc.url, '--type', 'cli.token', '--id', 'tok-1'];
    const refused = await herald(args);
    assert.equal(refused.code, 1);
    assert.equal(JSON.parse(refused.stdout).code, 'UNAUTHORIZED');
    const sent = await herald(args, tokens);
    assert.equal(sent.code, 0, sent.stdout);
    await sink.waitFor(1);

    let list = await herald(['dlq', 'list', '--url', proc.url], tokens);
    for (let i = 0; i < 50 && !list.stdout.includes('tok-1'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      list = await herald(['dlq', 'list', '--url', proc.url], tokens);
    }
    const id = list.stdout.split('\t')[0]!;
    assert.match(id, /^\d+$/, list.stdout);
    sink.setDefault({ status: 200 });
    const replay = await herald(['dlq', 'replay', id, '--url', proc.url], tokens);
    assert.equal(replay.code, 0, replay.stdout);
    assert.deepEqual(JSON.parse(replay.stdout).replayed, [Number(id)]);
    await sink.waitFor(2);
  });
});
