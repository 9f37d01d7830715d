/**
 * Prometheus metrics: request counts and latency histograms by method/route/status, process
 * memory, and gauges a service registers for its domain. Rendered as text exposition 0.0.4.
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Series {
  labels: string;
  count: number;
  sum: number;
  buckets: number[];
}

export interface GaugeSample {
  /** Extra labels; a `service` label here replaces the exporting service's one. */
  labels?: Record<string, string>;
  value: number;
}

export interface Metrics {
  /** Records one finished request. `route` must be the route pattern, never the raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** Registers a gauge whose samples are collected at scrape time. */
  registerGauge(name: string, help: string, collect: () => GaugeSample[] | Promise<GaugeSample[]>): void;
  render(): Promise<string>;
}

export function createMetrics(options: { service: string }): Metrics {
  const series = new Map<string, Series>();
  const gauges: { name: string; help: string; collect: () => GaugeSample[] | Promise<GaugeSample[]> }[] = [];
  const serviceLabel = `service="${escapeLabel(options.service)}"`;

  return {
    observeRequest(method, route, status, seconds) {
      const labels = `${serviceLabel},method="${escapeLabel(method)}",route="${escapeLabel(route)}",status="${status}"`;
      let s = series.get(labels);
      if (!s) {
        s = { labels, count: 0, sum: 0, buckets: BUCKETS.map(() => 0) };
        series.set(labels, s);
      }
      s.count += 1;
      s.sum += seconds;
      for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) s.buckets[i]! += 1;
    },
    registerGauge(name, help, collect) {
      gauges.push({ name, help, collect });
    },
    async render() {
      const out: string[] = [];
      out.push('# HELP http_requests_total HTTP requests answered, by method, route and status.');
      out.push('# TYPE http_requests_total counter');
      for (const s of series.values()) out.push(`http_requests_total{${s.labels}} ${s.count}`);
      out.push('# HELP http_request_duration_seconds Time to answer HTTP requests.');
      out.push('# TYPE http_request_duration_seconds histogram');
      for (const s of series.values()) {
        BUCKETS.forEach((le, i) => out.push(`http_request_duration_seconds_bucket{${s.labels},le="${le}"} ${s.buckets[i]}`));
        out.push(`http_request_duration_seconds_bucket{${s.labels},le="+Inf"} ${s.count}`);
        out.push(`http_request_duration_seconds_sum{${s.labels}} ${s.sum}`);
        out.push(`http_request_duration_seconds_count{${s.labels}} ${s.count}`);
      }
      const mem = process.memoryUsage();
      out.push('# HELP process_resident_memory_bytes Resident memory size in bytes.');
      out.push('# TYPE process_resident_memory_bytes gauge');
      out.push(`process_resident_memory_bytes{${serviceLabel}} ${mem.rss}`);
      out.push('# HELP process_heap_used_bytes JavaScript heap in use, in bytes.');
      out.push('# TYPE process_heap_used_bytes gauge');
      out.push(`process_heap_used_bytes{${serviceLabel}} ${mem.heapUsed}`);
      out.push('# HELP process_uptime_seconds Seconds since the process started.');
      out.push('# TYPE process_uptime_seconds gauge');
      out.push(`process_uptime_seconds{${serviceLabel}} ${process.uptime()}`);
      for (const g of gauges) {
        out.push(`# HELP ${g.name} ${g.help}`);
        out.push(`# TYPE ${g.name} gauge`);
        for (const sample of await g.collect()) {
          // A gauge about another service (monitoring's `service_up{service=…}`) names it in its own
          // `service` label, which then replaces this one: Prometheus refuses a label given twice.
          const labels = { service: options.service, ...sample.labels };
          const text = Object.entries(labels)
            .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
            .join(',');
          out.push(`${g.name}{${text}} ${sample.value}`);
        }
      }
      return out.join('\n') + '\n';
    },
  };
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
