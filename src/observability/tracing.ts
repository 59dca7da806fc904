import {
  type Context,
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { EngineHooks } from '../engine/engine.js';
import type { CloudEvent } from '../events/types.js';
import { tracesEndpoint } from './traces-endpoint.js';

export interface Tracing {
  hooks: EngineHooks;
  /** Sends what is buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

const propagator = new W3CTraceContextPropagator();

/** The trace context an event carries in its distributed-tracing extension (traceparent). */
function parentOf(event: CloudEvent): Context {
  if (typeof event.traceparent !== 'string') return context.active();
  const carrier: Record<string, string> = { traceparent: event.traceparent };
  if (typeof event.tracestate === 'string') carrier.tracestate = event.tracestate;
  return propagator.extract(context.active(), carrier, {
    get: (c, k) => c[k],
    keys: (c) => Object.keys(c),
  });
}

const eventAttributes = (event: CloudEvent) => ({
  'cloudevents.event_id': event.id,
  'cloudevents.event_source': event.source,
  'cloudevents.event_type': event.type,
  ...(event.subject ? { 'cloudevents.event_subject': event.subject } : {}),
});

/**
 * OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per ingest, per
 * routing and per delivery attempt, each a child of the trace the event names in its
 * `traceparent` extension (CloudEvents distributed tracing), exported over OTLP/HTTP.
 */
export function createTracing(env: NodeJS.ProcessEnv = process.env): Tracing | null {
  const url = tracesEndpoint(env);
  if (!url) return null;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? 'herald' }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  propagation.setGlobalPropagator(propagator);
  const tracer: Tracer = provider.getTracer('herald');
  return {
    hooks: {
      onIngested: (events) => {
        for (const { event, seq } of events) {
          tracer
            .startSpan(
              'herald.ingest',
              { kind: SpanKind.CONSUMER, attributes: { ...eventAttributes(event), 'herald.seq': seq } },
              parentOf(event),
            )
            .end();
        }
      },
      onRouted: (stored, record) => {
        const span = tracer.startSpan(
          'herald.route',
          {
            kind: SpanKind.INTERNAL,
            attributes: {
              ...eventAttributes(stored.event),
              'herald.triggers_matched': record.matched,
              'herald.deliveries': record.deliveries,
              'herald.filter_errors': record.errors.length,
            },
          },
          parentOf(stored.event),
        );
        span.end();
      },
      onAttempt: (delivery, outcome, result, durationMs, event) => {
        const span = tracer.startSpan(
          'herald.deliver',
          {
            kind: SpanKind.PRODUCER,
            startTime: outcome.attempt.startedAt,
            attributes: {
              ...(event ? eventAttributes(event) : { 'cloudevents.event_id': delivery.eventId }),
              'herald.delivery_id': delivery.id,
              'herald.trigger': delivery.trigger,
              'herald.channel': delivery.channel,
              'herald.attempt': outcome.attempt.number,
              'herald.outcome': result.outcome,
            },
          },
          event ? parentOf(event) : context.active(),
        );
        if (result.outcome !== 'delivered')
          span.setStatus({ code: SpanStatusCode.ERROR, message: result.reason });
        span.end(outcome.attempt.startedAt + durationMs);
      },
    },
    shutdown: async () => {
      await provider.forceFlush();
      await provider.shutdown();
    },
  };
}
