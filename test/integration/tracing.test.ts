import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTracing } from '../../src/observability/tracing.js';
import { eventually, startTestHerald } from '../support/herald.js';
import { startHttpSink } from '../support/http-sink.js';

interface OtlpSpan {
  traceId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}

describe('OpenTelemetry tracing', () => {
  it('exports ingest, route and deliver spans under the trace named by the event’s traceparent', async () => {
    const collector = await startHttpSink();
    const herald = await startTestHerald(
      'channels:\n  box: { kind: inbox }\ntriggers:\n  t: { actions: [{ channel: box, text: hi }] }\n',
      { env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url.replace('/hook', '') } },
    );
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await herald.post(
      '/events',
      {
        specversion: '1.0',
        id: 'traced-1',
        source: 'test',
        type: 't',
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202);
    await eventually(async () => {
      const inbox = (await (await herald.get('/api/inbox')).json()) as { messages: unknown[] };
      return inbox.messages.length === 1;
    });
    await herald.close(); // flushes the exporter
    const spans: OtlpSpan[] = collector.requests
      .filter((r) => r.url === '/v1/traces')
      .flatMap((r) =>
        JSON.parse(r.body).resourceSpans.flatMap((rs: { scopeSpans: { spans: OtlpSpan[] }[] }) =>
          rs.scopeSpans.flatMap((ss) => ss.spans),
        ),
      );
    await collector.close();
    const names = spans.map((s) => s.name).sort();
    assert.deepEqual(names, ['herald.deliver', 'herald.ingest', 'herald.route']);
    for (const span of spans) {
      assert.equal(span.traceId, traceId);
      assert.equal(span.parentSpanId, '00f067aa0ba902b7');
    }
    const deliver = spans.find((s) => s.name === 'herald.deliver')!;
    const attr = (k: string) => deliver.attributes.find((a) => a.key === k)?.value;
    assert.deepEqual(attr('herald.channel'), { stringValue: 'box' });
    assert.deepEqual(attr('herald.outcome'), { stringValue: 'delivered' });
  });

  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    assert.equal(createTracing({}), null);
    assert.notEqual(createTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), null);
  });
});
