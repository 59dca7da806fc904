import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { emailActionSchema, emailChannel, emailConfigSchema } from '../../src/channels/email/index.js';
import { jobActionSchema, jobChannel, jobConfigSchema } from '../../src/channels/job/index.js';
import { slackActionSchema, slackChannel, slackConfigSchema } from '../../src/channels/slack/index.js';
import {
  type Channel,
  type ChannelContext,
  type ChannelResult,
  type DeliveryRequest,
  SendTimeoutError,
} from '../../src/engine/types.js';
import { tempDir } from '../support/herald.js';
import { type FakeKubernetes, startFakeKubernetes } from '../support/kubernetes/index.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';

/**
 * Each channel hands the send's signal to what it waits on: aborted at the deadline, a send
 * answers retry within moments, naming the deadline, however long the far end would have taken.
 */
const DEADLINE_MS = 300;

function request<A>(action: A, overrides: Partial<DeliveryRequest<A>> = {}): DeliveryRequest<A> {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new SendTimeoutError(DEADLINE_MS)), DEADLINE_MS);
  return {
    deliveryId: 1,
    idempotencyKey: `key-${Math.random()}`,
    attempt: 1,
    event: { specversion: '1.0', id: 'e1', source: 'test', type: 'test.happened' },
    trigger: 't',
    action,
    recipient: null,
    signal: controller.signal,
    ...overrides,
  };
}

/** Sends, and measures how long the channel took to answer. */
async function timed(send: Promise<ChannelResult>): Promise<{ result: ChannelResult; ms: number }> {
  const started = Date.now();
  const result = await send;
  return { result, ms: Date.now() - started };
}

const reasonOf = (result: ChannelResult) => (result.outcome === 'delivered' ? '' : result.reason);
const context = (env: NodeJS.ProcessEnv = {}) => ({ env }) as unknown as ChannelContext;

describe('channels end a send when its signal is aborted', () => {
  const opened: Channel<never>[] = [];
  after(async () => {
    for (const c of opened) await c.close?.();
  });

  describe('email', () => {
    // Accepts connections and never says a word: nodemailer waits for the greeting.
    let silent: Server;
    const sockets: Socket[] = [];
    before(async () => {
      await emailChannel.prepare?.(
        emailConfigSchema.parse({ url: 'smtp://127.0.0.1', from: 'h@example.com' }),
      );
      silent = createServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    });

    it('an SMTP server that never greets is left at the deadline', async () => {
      const port = (silent.address() as { port: number }).port;
      const email = emailChannel.create(
        'mail',
        emailConfigSchema.parse({
          url: `smtp://127.0.0.1:${port}`,
          from: 'h@example.com',
          timeoutMs: 30_000,
        }),
        context(),
      );
      opened.push(email as Channel<never>);
      const { result, ms } = await timed(
        email.send(
          request(emailActionSchema.parse({ subject: 'hi', text: 'hello' }), { recipient: 'a@example.com' }),
        ),
      );
      assert.equal(result.outcome, 'retry');
      assert.match(reasonOf(result), /no answer within 300 ms/);
      assert.ok(ms < DEADLINE_MS + 700, `answered after ${ms} ms`);
    });
  });

  describe('slack', () => {
    let slack: SlackServer;
    before(async () => {
      slack = await startSlackServer();
      await slackChannel.prepare?.(slackConfigSchema.parse({ token: slack.token }));
      slack.addChannel('busy');
    });
    after(() => slack.close());

    const make = () =>
      slackChannel.create(
        'slack',
        slackConfigSchema.parse({ token: slack.token, apiUrl: slack.url, perChannelIntervalMs: 10_000 }),
        context(),
      );

    it('a Web API call that does not answer, and a wait for the Slack channel’s turn, end at the deadline', async () => {
      const channel = make();
      const action = slackActionSchema.parse({ text: 'hello' });
      slack.failNext('chat.postMessage', { delayMs: 5000 });
      const slow = await timed(channel.send(request(action, { recipient: '#busy' })));
      assert.equal(slow.result.outcome, 'retry');
      assert.equal(reasonOf(slow.result), 'Slack request stopped: no answer within 300 ms');
      assert.ok(slow.ms < DEADLINE_MS + 700, `answered after ${slow.ms} ms`);
      // The next message to #busy must wait 10 s for its turn: longer than its deadline.
      const paced = await timed(channel.send(request(action, { recipient: '#busy' })));
      assert.equal(reasonOf(paced.result), 'Slack request stopped: no answer within 300 ms');
      assert.ok(paced.ms < DEADLINE_MS + 700, `answered after ${paced.ms} ms`);
    });
  });

  describe('job', () => {
    let k8s: FakeKubernetes;
    const dir = tempDir();
    before(async () => {
      k8s = await startFakeKubernetes();
    });
    after(async () => {
      await k8s.close();
      dir.remove();
    });

    it('kubernetes: a Job create the API server does not answer is abandoned at the deadline', async () => {
      const config = jobConfigSchema.parse({
        mode: 'kubernetes',
        kubernetes: { kubeconfig: k8s.writeKubeconfig(dir.path) },
      });
      await jobChannel.prepare?.(config);
      const cluster = jobChannel.create('cluster', config, context());
      k8s.stallNext();
      const manifest = {
        spec: {
          template: { spec: { containers: [{ name: 'c', image: 'busybox' }], restartPolicy: 'Never' } },
        },
      };
      const { result, ms } = await timed(cluster.send(request(jobActionSchema.parse({ manifest }))));
      assert.equal(result.outcome, 'retry');
      assert.match(reasonOf(result), /no answer within 300 ms/);
      assert.ok(ms < DEADLINE_MS + 700, `answered after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(k8s.open, 0, 'the request was closed, not left open');
    });

    it('local: a job still running at the deadline is killed, and the reason says so', async () => {
      const local = jobChannel.create(
        'run',
        jobConfigSchema.parse({ timeoutMs: 60_000 }),
        context(process.env),
      );
      const { result, ms } = await timed(
        local.send(request(jobActionSchema.parse({ command: 'sleep', args: ['30'] }) as never)),
      );
      assert.equal(result.outcome, 'retry');
      assert.equal(reasonOf(result), 'job run timed out after 300 ms and was killed');
      assert.ok(ms < DEADLINE_MS + 700, `answered after ${ms} ms`);
    });
  });
});
