import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const repoRoot = join(import.meta.dirname, '../..');

/** What a deployment provides through its environment (a Secret, compose's `environment`). */
export const deploymentEnv = {
  DATABASE_URL: 'postgres://herald:secret@postgres:5432/herald',
  NATS_URL: 'nats://nats:4222',
};

/**
 * Runs `herald validate` on a config text, as an operator would before shipping it, with only the
 * variables a deployment sets. Nothing connects: validation reads the file alone.
 */
export async function validateHeraldConfig(text: string): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-deploy-'));
  const file = join(dir, 'herald.yaml');
  writeFileSync(file, text);
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'validate', file],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...deploymentEnv },
        timeout: 60_000,
      },
    );
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failure = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: failure.code ?? 1, output: `${failure.stdout ?? ''}${failure.stderr ?? failure.message}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
