import type { Registry } from 'prom-client';

interface Series {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

interface Sample {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  /** Always empty, as prom-client's is without exemplars: null on buckets, undefined on the rest. */
  exemplar: null | undefined;
}

export interface OneLabelHistogramOptions {
  name: string;
  help: string;
  labelName: string;
  /** Upper bounds, ascending. */
  buckets: readonly number[];
  registry: Registry;
}

/**
 * A Prometheus histogram with one label, exposed as prom-client's Histogram exposes one (same
 * lines, same order). prom-client checks the labels and builds a key string from them on every
 * `observe`; delivery attempts observe twice each, so here an observation is a map lookup, a walk
 * along the bounds and three additions, and the cumulative buckets are made when scraped. The
 * label's values must already be bounded (channel names come from the config).
 */
export class OneLabelHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly labelName: string;
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, Series>();

  constructor(options: OneLabelHistogramOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelName = options.labelName;
    this.bounds = options.buckets;
    options.registry.registerMetric(this as never);
  }

  observe(labelValue: string, value: number): void {
    // prom-client refuses what it cannot count; an attempt's timing is never such a value.
    if (!Number.isFinite(value)) return;
    let series = this.series.get(labelValue);
    if (!series) {
      series = { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      this.series.set(labelValue, series);
    }
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  /** What the registry writes as text: the label apart from `le`, as prom-client gives it. */
  getForPromString(): Promise<{
    name: string;
    help: string;
    type: string;
    values: Sample[];
    aggregator: string;
  }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [labelValue, series] of this.series) {
      const shared = { [this.labelName]: labelValue };
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += series.counts[i]!;
        values.push(sample({ le: this.bounds[i]! }, shared, cumulative, bucket, null));
      }
      values.push(sample({ le: '+Inf' }, shared, series.count, bucket, null));
      values.push(sample({}, shared, series.sum, `${this.name}_sum`, undefined));
      values.push(sample({}, shared, series.count, `${this.name}_count`, undefined));
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  /** As JSON (`registry.getMetricsAsJSON`): every label on each value. */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: Omit<Sample, 'sharedLabels'>[];
    aggregator: string;
  }> {
    const metric = await this.getForPromString();
    return {
      ...metric,
      values: metric.values.map(({ sharedLabels, labels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  reset(): void {
    this.series.clear();
  }
}

function sample(
  labels: Sample['labels'],
  sharedLabels: Sample['sharedLabels'],
  value: number,
  metricName: string,
  exemplar: null | undefined,
): Sample {
  return { labels, sharedLabels, value, metricName, exemplar };
}
