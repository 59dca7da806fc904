import { startSlackServer } from '../test/support/slack/index.js';
import { form, postSignedToSlackApp, slashCommandBody } from '../test/support/slack/requests.js';
import { percentile, startHerald } from './support.js';

const SECRET = 'bench-signing-secret';

/**
 * Slash-command ack latency while the Slack Web API is slow: every `users.info` (which
 * `/herald subscribe` needs) takes 2 s, yet Slack's request must be answered at once.
 */
export async function benchSlackAck(commands: number, concurrency = 8) {
  const slack = await startSlackServer();
  const warmUp = 20;
  for (let i = 0; i < commands + warmUp; i++)
    slack.addUser({ id: `UB${i}`, name: `u${i}`, email: `u${i}@example.com` });
  slack.failNext('users.info', { delayMs: 2000 }, commands + warmUp);
  const herald = await startHerald(`
slack:
  token: ${slack.token}
  signingSecret: ${SECRET}
  apiUrl: ${slack.url}
`);
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  let t0 = Date.now();
  // The first commands of a fresh process pay for JIT compilation; they are sent but not counted.
  let end = warmUp;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      const body = form(
        slashCommandBody({
          command: '/herald',
          text: 'subscribe',
          user_id: `UB${i}`,
          response_url: slack.createResponseUrl(),
        }),
      );
      const started = performance.now();
      const res = await postSignedToSlackApp(
        herald.url,
        '/slack/commands',
        SECRET,
        body,
        'application/x-www-form-urlencoded',
      );
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
      if (res.status !== 200) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  latencies.length = 0;
  errors = 0;
  end = warmUp + commands;
  t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (Date.now() - t0) / 1000;
  const row = {
    scenario: '5. /herald subscribe ack while Slack takes 2 s per call',
    system: 'herald' as const,
    acceptedPerSec: Math.round(commands / seconds),
    deliveredPerSec: 0,
    p50Ms: Math.round(percentile(latencies, 50)),
    p99Ms: Math.round(percentile(latencies, 99)),
    peakRssMb: Math.round(herald.peakRssMb()),
    errors,
    note: `${commands} signed slash commands, ${concurrency} at a time; the answers follow via response_url`,
  };
  await herald.stop();
  await slack.close();
  return row;
}
