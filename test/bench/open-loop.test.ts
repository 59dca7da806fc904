import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { account, drain, senderPool, sendOpenLoop } from '../../bench/open-loop.js';
import { type LatencySink, startLatencySink } from '../../bench/support.js';

const HOLD_MS = 40;
const CONNECTIONS = 256;

/**
 * A system under test that misbehaves on purpose, by the request's sequence number: every tenth
 * (…3) is refused with a 503, every tenth (…5) is accepted and dropped, every tenth (…7) is delivered
 * twice, and every one is held HOLD_MS before it is forwarded and answered.
 */
async function startFaultySystem(sinkUrl: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const seq = (JSON.parse(body) as { benchSeq: number }).benchSeq;
      setTimeout(async () => {
        if (seq % 10 === 3) {
          res.writeHead(503).end();
          return;
        }
        const copies = seq % 10 === 5 ? 0 : seq % 10 === 7 ? 2 : 1;
        for (let i = 0; i < copies; i++) {
          const r = await request(sinkUrl, { method: 'POST', body });
          await r.body.dump();
        }
        res.writeHead(202).end();
      }, HOLD_MS);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('open-loop sender', () => {
  let sink: LatencySink;
  let system: Awaited<ReturnType<typeof startFaultySystem>>;
  before(async () => {
    sink = await startLatencySink();
    system = await startFaultySystem(sink.url);
  });
  after(async () => {
    await system.close();
    await sink.close();
  });

  it('sends rate × duration requests and accounts for each: refused, lost, duplicated, delivered', async (t) => {
    const pool = senderPool(system.origin, CONNECTIONS, 10_000);
    t.after(() => pool.destroy());
    const sent = await sendOpenLoop({
      pool,
      path: '/notify',
      contentType: 'application/json',
      rate: 400,
      durationMs: 500,
      firstSeq: 1000,
      body: (benchSeq, benchAtUs) => JSON.stringify({ benchSeq, benchAtUs }),
      timeoutMs: 10_000,
      spinBelowMs: 1,
    });
    await drain(sink, sent, 2000, 10_000);
    const a = account(sent, sink);
    assert.equal(sent.sent, 200);
    assert.deepEqual(sent.statuses, { 202: 180, 503: 20 });
    assert.deepEqual(
      {
        sent: a.sent,
        accepted: a.accepted,
        rejected: a.rejected,
        failed: a.failed,
        delivered: a.delivered,
        duplicates: a.duplicates,
        lost: a.lost,
        deliveredUnacknowledged: a.deliveredUnacknowledged,
      },
      {
        sent: 200,
        accepted: 180,
        rejected: 20,
        failed: 0,
        delivered: 160,
        duplicates: 20,
        lost: 20,
        deliveredUnacknowledged: 0,
      },
    );
    // Latency runs from the scheduled send, so it holds the system's own hold time at least.
    assert.ok(a.p50Ms >= HOLD_MS, `p50 ${a.p50Ms} ms`);
    assert.ok(a.maxMs >= a.p99Ms && a.p99Ms >= a.p50Ms);
    assert.ok(sent.lagUs.p50 >= 0 && sent.lagUs.max >= sent.lagUs.p99);
  });

  it('does not wait for answers: requests keep leaving while earlier ones are held', async (t) => {
    // 100 requests at 1,000/s leave within about 0.1 s; each is held 40 ms, so with one request at
    // a time (a closed loop) they would take at least 4 s and never have more than one in flight.
    const pool = senderPool(system.origin, CONNECTIONS, 10_000);
    t.after(() => pool.destroy());
    const sent = await sendOpenLoop({
      pool,
      path: '/notify',
      contentType: 'application/json',
      rate: 1000,
      durationMs: 100,
      firstSeq: 5000,
      body: (benchSeq, benchAtUs) => JSON.stringify({ benchSeq, benchAtUs }),
      timeoutMs: 10_000,
      spinBelowMs: 1,
    });
    assert.equal(sent.sent, 100);
    assert.ok(sent.maxInFlight > 1, `at most ${sent.maxInFlight} in flight`);
    assert.equal(sent.maxQueuedAtSender, 0);
  });
});
