import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';

// No container engine runs here and Debian has no hadolint: these checks read the Dockerfile for
// what the image promises, and run its HEALTHCHECK command against a real Herald.
const repoRoot = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(repoRoot, 'deploy/Dockerfile'), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  const logical = text.replace(/\\\n/g, ' ').split('\n');
  for (const line of logical) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(trimmed)!;
    if (keyword!.toUpperCase() === 'FROM') stage++;
    out.push({ keyword: keyword!.toUpperCase(), args: args!, stage });
  }
  return out;
}

const all = instructions(dockerfile);
const finalStage = Math.max(...all.map((i) => i.stage));
const final = all.filter((i) => i.stage === finalStage);
const execForm = (args: string) => JSON.parse(args.replace(/^CMD\s+/, '')) as string[];

/** .dockerignore's verdict on a path: the last matching pattern wins (`!` re-includes). */
function ignored(path: string): boolean {
  const patterns = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let result = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    const body = glob
      .split(/\*\*\/?/)
      .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
      .join('.*');
    const regex = new RegExp(`^${body}(/.*)?$`);
    if (regex.test(path)) result = !negated;
  }
  return result;
}

describe('deploy/Dockerfile', () => {
  it('builds in stages on node:24-slim and runs as an unprivileged user', () => {
    const froms = all.filter((i) => i.keyword === 'FROM');
    assert.ok(froms.length >= 2, 'not a multi-stage build');
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-slim$/m);
    for (const from of froms) assert.match(from.args, /^\$\{NODE_IMAGE\}/);
    const users = final.filter((i) => i.keyword === 'USER');
    assert.ok(
      users.length > 0 && !['root', '0'].includes(users.at(-1)!.args),
      'the final stage runs as root',
    );
  });

  it('the final stage gets only production dependencies', () => {
    const copied = final.filter((i) => i.keyword === 'COPY' && i.args.includes('node_modules'));
    assert.equal(copied.length, 1);
    const fromStage = /--from=(\S+)/.exec(copied[0]!.args)![1]!;
    const stageIndex = all.findIndex((i) => i.keyword === 'FROM' && i.args.endsWith(` AS ${fromStage}`));
    const install = all.filter((i) => i.stage === all[stageIndex]!.stage && /npm ci/.test(i.args));
    assert.equal(install.length, 1);
    assert.match(install[0]!.args, /--omit=dev/);
  });

  it('has a data volume, a HEALTHCHECK on /healthz and an init process forwarding SIGTERM', () => {
    assert.ok(final.some((i) => i.keyword === 'VOLUME' && i.args.includes('/var/lib/herald')));
    const cmd = final.find((i) => i.keyword === 'CMD')!;
    assert.equal(execForm(cmd.args)[execForm(cmd.args).indexOf('--data') + 1], '/var/lib/herald');
    const health = final.find((i) => i.keyword === 'HEALTHCHECK')!;
    assert.match(health.args, /\/healthz/);
    const entrypoint = JSON.parse(final.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[];
    assert.deepEqual(entrypoint.slice(0, 2), ['/usr/bin/tini', '--']);
    assert.ok(final.some((i) => i.keyword === 'RUN' && /apt-get install .*tini/.test(i.args)));
  });

  it('everything the Dockerfile copies from the context exists and passes .dockerignore', () => {
    const sources = all
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    assert.ok(sources.includes('src') && sources.includes('package-lock.json'));
    for (const source of sources) {
      assert.ok(existsSync(join(repoRoot, source)), `${source} is not in the repository`);
      assert.equal(ignored(source), false, `.dockerignore leaves out ${source}`);
    }
    assert.equal(ignored('node_modules/pg/package.json'), true, 'node_modules would be sent to the build');
    assert.equal(ignored('.git/HEAD'), true);
    assert.equal(ignored('.herald/herald.db'), true);
    assert.equal(ignored('src/app.ts'), false);
  });

  describe('the HEALTHCHECK command', () => {
    const dataDir = tempDir('herald-health-');
    let herald: HeraldProcess;
    before(async () => {
      herald = await spawnHerald(['--port', '0', '--data', dataDir.path]);
    });
    after(async () => {
      await herald?.kill();
      dataDir.remove();
    });

    const healthArgs = () => {
      const args = /HEALTHCHECK .*?CMD (\[.*\])$/m.exec(dockerfile.replace(/\\\n\s*/g, ''))![1]!;
      return JSON.parse(args) as string[];
    };

    it('passes against a running Herald and fails when nothing listens', async () => {
      const [program, ...args] = healthArgs();
      assert.equal(program, 'node');
      const port = new URL(herald.url).port;
      const run = (p: string) =>
        promisify(execFile)(process.execPath, args, { env: { HERALD_HEALTH_PORT: p }, timeout: 20_000 }).then(
          () => 0,
          (err: { code?: number }) => err.code ?? 1,
        );
      assert.equal(await run(port), 0);
      // What `docker stop` sends (through tini): Herald finishes and exits 0.
      assert.equal(await herald.kill('SIGTERM'), 0);
      assert.equal(await run(port), 1);
    });
  });
});
