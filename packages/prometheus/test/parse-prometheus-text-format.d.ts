/** Types for parse-prometheus-text-format, which ships none: its prom2json-shaped output (every number a string). */
declare module 'parse-prometheus-text-format' {
  /** One sample: `value` for counters, gauges and untyped; `count`, `sum` and `buckets` (by `le`) or `quantiles` for histograms and summaries. */
  export interface Sample {
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
    count?: string;
    sum?: string;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
  }
  /** One metric family: `type` in upper case (`COUNTER`, `GAUGE`, `HISTOGRAM`, `SUMMARY`, `UNTYPED`). */
  export interface MetricFamily {
    name: string;
    help: string;
    type: string;
    metrics: Sample[];
  }
  export default function parsePrometheusTextFormat(text: string): MetricFamily[];
}
