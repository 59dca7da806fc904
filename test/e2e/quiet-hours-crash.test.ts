import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { eventually, type HeraldProcess, routedDeliveries, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// A held delivery is a pending delivery with a later due time: nothing about it lives in memory.
// Quiet hours are minutes of local time, so the period here ends at the first minute boundary at
// least 8 s away (the test waits for it: up to 68 s) and began two hours before.

const deliveriesOf = (url: string, id: string) =>
  routedDeliveries<{ status: string; nextAttemptAt: number; note: string | null }>({ url }, id);

describe('a delivery held by quiet hours survives SIGKILL (embedded store)', { timeout: 150_000 }, () => {
  let sink: HttpSink;
  const dir = tempDir('herald-quiet-crash-');
  const endsAt = DateTime.fromMillis(Date.now() + 8_000, { zone: 'UTC' })
    .startOf('minute')
    .plus({ minutes: 1 });
  const to = endsAt.toFormat('HH:mm');
  const from = endsAt.minus({ hours: 2 }).toFormat('HH:mm');
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
channels:
  hook: { kind: webhook, url: ${sink.url} }
triggers:
  night:
    actions:
      - channel: hook
        quietHours: { from: "${from}", to: "${to}", timezone: UTC }
`,
    );
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  it('is sent by the next process once the quiet period ends, and not before', async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    const first = await spawnHerald(args);
    let second: HeraldProcess | undefined;
    try {
      const res = await fetch(`${first.url}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id: 'quiet-1', source: 'crash', type: 'quiet.crash' }),
      });
      assert.equal(res.status, 202, await res.text());
      const [held] = await eventually(() => deliveriesOf(first.url, 'quiet-1'));
      assert.equal(held!.status, 'pending');
      assert.equal(held!.nextAttemptAt, endsAt.toMillis());
      assert.match(held!.note!, new RegExp(`^held until ${to} UTC`));
      await first.kill('SIGKILL');
      assert.equal(sink.requests.length, 0, 'nothing was sent before the kill');

      second = await spawnHerald(args);
      await sink.waitFor(1, 90_000);
      assert.ok(Date.now() >= endsAt.toMillis(), 'not sent before the quiet period ended');
      const [sent] = await eventually(async () => {
        const list = await deliveriesOf(second!.url, 'quiet-1');
        return list?.[0]?.status === 'delivered' ? list : undefined;
      });
      assert.equal(sent!.note, held!.note, 'the delivery still says why it waited');
      assert.deepEqual(
        sink.requests.map((r) => (JSON.parse(r.body) as { id: string }).id),
        ['quiet-1'],
      );
    } finally {
      await first.kill('SIGKILL');
      await second?.kill();
    }
  });
});
