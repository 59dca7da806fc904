import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type HeraldProcess, repoRoot, spawnHerald, tempDir } from '../support/herald.js';

const run = promisify(execFile);

/** Lines of a child's stdout once it has said it listens (a little later for what follows). */
async function startAndRead(env: NodeJS.ProcessEnv): Promise<string[]> {
  const dir = tempDir('herald-logs-');
  let proc: HeraldProcess | undefined;
  try {
    proc = await spawnHerald(['--port', '0', '--data', dir.path], env);
    return proc.output.join('').split('\n').filter(Boolean);
  } finally {
    await proc?.kill();
    dir.remove();
  }
}

describe('logs: JSON for machines, readable lines for people', () => {
  it('stdout that is not a terminal gets one JSON object a line, the start line with its facts', async () => {
    const lines = await startAndRead({});
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    const started = lines.map((l) => JSON.parse(l)).find((l) => /^Herald listening on/.test(l.msg));
    assert.ok(started, lines.join('\n'));
    assert.match(started.dashboard, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(started.config, 'examples/notify-router/herald.yaml');
    assert.equal(started.store, 'sqlite');
    assert.equal(started.adminAuth, 'local-only');
    assert.equal(started.ingestAuth, 'open');
    assert.deepEqual(started.roles, ['ingest', 'router', 'dispatcher']);
  });

  it('HERALD_LOG_FORMAT=pretty gives the banner: one fact a line, no JSON', async () => {
    const lines = await startAndRead({ HERALD_LOG_FORMAT: 'pretty', HERALD_ADMIN_TOKEN: 'admin-s3cret' });
    const text = lines.join('\n');
    assert.ok(!lines.some((l) => l.startsWith('{')), text);
    assert.match(text, /INFO: Herald listening on http:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(text, /\n {2}dashboard +http:\/\/127\.0\.0\.1:\d+\/\n/);
    assert.match(text, /\n {2}config +examples\/notify-router\/herald\.yaml\n/);
    assert.match(text, /\n {2}store +sqlite in .* · bus embedded\n/);
    assert.match(text, /\n {2}admin API +needs the admin token/);
    assert.match(text, /\n {2}routing +events go: sales-to-slack → slack-sales \(inbox\)/);
    assert.match(text, /SLACK_BOT_TOKEN not set; its messages go to the inbox instead/);
    assert.doesNotMatch(text, /admin-s3cret/);
  });

  it('a bad HERALD_LOG_FORMAT is refused with what it must be', async () => {
    const res = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--port', '0'], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HERALD_LOG_FORMAT: 'xml' },
    }).catch((err: { code: number; stderr: string }) => err);
    assert.equal((res as { code: number }).code, 1);
    assert.match((res as { stderr: string }).stderr, /HERALD_LOG_FORMAT must be json or pretty, not "xml"/);
  });

  // util-linux `script` runs a command on a pseudo-terminal: stdout is then a real terminal.
  const script = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
  const onTerminal = async (env: NodeJS.ProcessEnv) => {
    const code =
      "import('./src/logger.ts').then((m) => m.createLogger().info({ token: 'xoxb-s3cret' }, 'hello'))";
    const { stdout } = await run(
      script!,
      ['-qec', `${process.execPath} --import tsx -e "${code}"`, '/dev/null'],
      { cwd: repoRoot, env: { PATH: process.env.PATH, NO_COLOR: '1', ...env } },
    );
    return stdout;
  };

  it('a terminal gets readable lines, secrets still redacted', {
    skip: !script && 'no `script`',
  }, async () => {
    const out = await onTerminal({});
    assert.match(out, /INFO: hello/);
    assert.doesNotMatch(out, /^\{/m);
    assert.match(out, /token: "\[redacted\]"/);
    assert.doesNotMatch(out, /s3cret/);
  });

  it('HERALD_LOG_FORMAT=json keeps JSON on a terminal', { skip: !script && 'no `script`' }, async () => {
    const out = await onTerminal({ HERALD_LOG_FORMAT: 'json' });
    const line = JSON.parse(out.trim().split(/\r?\n/).at(-1)!);
    assert.equal(line.msg, 'hello');
    assert.equal(line.token, '[redacted]');
  });
});
