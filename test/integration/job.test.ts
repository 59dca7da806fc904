import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const node = process.execPath;
const EVIL = '$(touch /tmp/herald-pwned); rm -rf ~ | `id` && echo "quoted" \'single\' > /tmp/herald-pwned2';

const CONFIG = `
channels:
  run: { kind: job, timeoutMs: 1500, concurrency: 4 }
  box: { kind: inbox }
triggers:
  echo-args:
    filter: { exact: { type: job.args } }
    actions:
      - channel: run
        command: ${node}
        args: ["-e", "console.log(JSON.stringify(process.argv.slice(1)))", "{{ event.data.evil }}", "plain"]
    delivery: { maxAttempts: 1 }
  slow:
    filter: { exact: { type: job.slow } }
    actions:
      - channel: run
        command: ${node}
        args: ["-e", "const c = require('child_process').spawn('sleep', ['30'], { stdio: 'ignore' }); console.log(c.pid); setTimeout(() => {}, 30000)"]
    delivery: { maxAttempts: 1 }
  emits:
    filter: { exact: { type: job.emit } }
    actions:
      - channel: run
        command: ${node}
        args: ["-e", "console.log('working'); console.log(JSON.stringify({ specversion: '1.0', type: 'job.done', subject: process.argv[1] }))", "{{ event.subject }}"]
  done:
    filter: { exact: { type: job.done } }
    actions: [{ channel: box, text: "job finished for {{ event.subject }}" }]
  fails:
    filter: { exact: { type: job.fail } }
    actions:
      - channel: run
        command: ${node}
        args: ["-e", "console.error('bad input'); process.exit(3)"]
        permanentExitCodes: [3]
`;

describe('job channel', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG, { env: { PATH: process.env.PATH } });
  });
  after(() => herald.close());

  const send = (id: string, type: string, extra: Record<string, unknown> = {}) =>
    herald.post(
      '/events',
      { specversion: '1.0', id, source: 'jobs', type, ...extra },
      { 'content-type': 'application/cloudevents+json' },
    );
  const finalDelivery = (id: string) =>
    eventually(
      async () => {
        const e = (await (await herald.get(`/api/events/${id}`)).json()) as {
          deliveries: {
            status: string;
            lastError: string | null;
            rendered: { stdout: string; stderr: string; exitCode: number | null };
          }[];
        };
        const d = e.deliveries?.[0];
        return d && d.status !== 'pending' ? d : undefined;
      },
      10_000,
      `the delivery of ${id}`,
    );

  it('arguments with shell metacharacters from event data reach the process verbatim', async () => {
    await send('args-1', 'job.args', { data: { evil: EVIL } });
    const d = await finalDelivery('args-1');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    assert.deepEqual(JSON.parse(d.rendered.stdout), [EVIL, 'plain']);
    assert.equal(existsSync('/tmp/herald-pwned'), false);
    assert.equal(existsSync('/tmp/herald-pwned2'), false);
  });

  it('a timeout kills the job and its children', async () => {
    await send('slow-1', 'job.slow');
    const d = await finalDelivery('slow-1');
    assert.equal(d.status, 'dead');
    assert.match(d.lastError ?? '', /timed out after 1500 ms and was killed/);
    const grandchild = Number(d.rendered.stdout.trim());
    assert.ok(grandchild > 0, 'the job printed its child’s pid');
    await eventually(
      () => {
        try {
          process.kill(grandchild, 0);
          return false;
        } catch {
          return true;
        }
      },
      3000,
      'the grandchild to be gone',
    );
  });

  it('CloudEvents printed on stdout become new events that route onward', async () => {
    await send('emit-1', 'job.emit', { subject: 'order-9' });
    const message = await eventually(async () => {
      const inbox = (await (await herald.get('/api/inbox')).json()) as {
        messages: { message: { text: string } }[];
      };
      return inbox.messages.find((m) => m.message.text === 'job finished for order-9');
    });
    assert.ok(message);
    const done = (await (await herald.get('/api/events?type=job.done')).json()) as {
      events: { event: Record<string, unknown> }[];
    };
    assert.equal(done.events[0]!.event.source, 'herald://job/run');
    assert.equal(done.events[0]!.event.heraldhops, 1);
  });

  it('a permanent exit code goes to the DLQ with the stderr tail', async () => {
    await send('fail-1', 'job.fail');
    const d = await finalDelivery('fail-1');
    assert.equal(d.status, 'dead');
    assert.match(d.lastError ?? '', /exit 3: bad input/);
    assert.equal(d.rendered.exitCode, 3);
  });
});
