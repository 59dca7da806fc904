/**
 * Where spans go, from the standard OpenTelemetry variables; undefined when tracing is off. Kept
 * apart from tracing.ts so a process without tracing never loads the OpenTelemetry SDK.
 */
export function tracesEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  return (
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (env.OTEL_EXPORTER_OTLP_ENDPOINT
      ? `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/traces`
      : undefined)
  );
}
