import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { trickle } from '../support/raw-http.js';

describe('graceful shutdown on SIGTERM', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-shutdown-');
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
server: { shutdownTimeoutMs: 3000 }
channels:
  hook: { kind: webhook, url: ${sink.url}, concurrency: 2, timeoutMs: 20000 }
triggers:
  everything:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 10, backoff: { initialMs: 100 } }
`,
    );
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  it('finishes in-flight sends, refuses new events, and the next start resumes the rest', async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    const herald = await spawnHerald(args);
    // Slow sink: each request takes 1.5 s, two at a time.
    sink.setDefault({ status: 200, delayMs: 1500 });
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${herald.url}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id: `s-${i}`, source: 'shutdown', type: 't' }),
      });
      assert.equal(res.status, 202);
    }
    await sink.waitFor(2);
    const stopped = herald.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const refused = await fetch(`${herald.url}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'late', source: 'shutdown', type: 't' }),
    }).then(
      (r) => r.status,
      () => 'connection refused',
    );
    assert.ok(refused === 503 || refused === 'connection refused', `late event got ${refused}`);
    assert.equal(await stopped, 0, 'exit code 0 after a graceful stop');
    const beforeRestart = new Set(sink.requests.map((r) => JSON.parse(r.body).id));
    assert.ok(beforeRestart.size < 6, 'not everything was sent before the stop');

    sink.setDefault({ status: 200 });
    const again = await spawnHerald(args);
    try {
      await eventually(
        () => new Set(sink.requests.map((r) => JSON.parse(r.body).id)).size === 6,
        10_000,
        'all six delivered',
      );
      assert.ok(!sink.requests.some((r) => JSON.parse(r.body).id === 'late'));
    } finally {
      await again.kill();
    }
  });

  it('a client trickling its upload does not hold the stop past shutdownTimeoutMs', async () => {
    const trickleDir = tempDir('herald-shutdown-trickle-');
    const configFile = join(trickleDir.path, 'herald.yaml');
    writeFileSync(configFile, 'server: { shutdownTimeoutMs: 1000 }\nchannels: { box: { kind: inbox } }\n');
    const herald = await spawnHerald([
      '--config',
      configFile,
      '--data',
      join(trickleDir.path, 'data'),
      '--port',
      '0',
    ]);
    try {
      const upload = trickle(
        herald.url,
        'POST /events HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/cloudevents+json\r\ncontent-length: 500\r\n\r\n{',
        { drip: ' ', intervalMs: 5000, giveUpMs: 25_000 },
      );
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const code = await herald.kill('SIGTERM');
      const elapsed = Date.now() - started;
      assert.equal(code, 0);
      // The deadline plus the time a process takes to exit; the upload alone would keep it 25 s.
      assert.ok(elapsed < 1000 + 1500, `stopped after ${elapsed} ms`);
      const { elapsedMs } = await upload.closed;
      assert.ok(elapsedMs < 5000, `the upload was cut after ${elapsedMs} ms`);
    } finally {
      await herald.kill('SIGKILL');
      trickleDir.remove();
    }
  });
});
