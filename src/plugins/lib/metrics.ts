// Prometheus metrics with APISIX's names, kept off the request path.
//
// A scrape never touches a worker. Each worker records into plain maps in
// its own process (MetricsRecorder: a counter bump and a bucket index per
// request, no label objects, no text) and ships only what changed since the
// last shipment, as a small JSON-able delta, about once a second. The agent
// merges the deltas of every worker (MetricsAggregator, prom-client metrics)
// and renders the exposition text off the request path, cached, for the
// metrics listener (startMetricsServer) — the model of APISIX PR #12383.
//
// Wiring (the gateway):
//   worker: startMetricsShipping((delta) => process.send({ type: 'metrics', delta }), 1000)
//   agent:  const metrics = new MetricsAggregator();
//           on a worker's delta (relayed by the primary): metrics.apply(delta)
//           await startMetricsServer(metrics, { host: '127.0.0.1', port: 9091 })
//           metrics.setEtcdReachable(...), metrics.setUpstreamStatus(...) from what the agent knows
//
// Without shipping (one process, as in tests) the aggregator can read the
// recorder directly: metrics.apply(workerMetrics().takeDelta()).

import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';

import { Counter, Gauge, Registry, type Metric } from 'prom-client';

/** APISIX's default latency buckets, in milliseconds. */
export const DEFAULT_LATENCY_BUCKETS: readonly number[] = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];

export const DEFAULT_METRICS_PATH = '/apisix/prometheus/metrics';
export const DEFAULT_METRICS_PORT = 9091;

// Label values of one series joined with a separator that never appears in them.
const SEPARATOR = '\u0001';

const STATUS_LABELS = ['code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node'] as const;
const LATENCY_LABELS = ['type', 'route', 'service', 'consumer', 'node'] as const;
const BANDWIDTH_LABELS = ['type', 'route', 'service', 'consumer', 'node'] as const;

/** One proxied request as the prometheus plugin measured it in the log phase. */
export interface RequestSample {
  readonly status: number;
  readonly route: string;
  readonly matchedUri: string;
  readonly matchedHost: string;
  readonly service: string;
  readonly consumer: string;
  readonly node: string;
  readonly requestMs: number;
  /** Undefined when no upstream answered. */
  readonly upstreamMs: number | undefined;
  readonly ingressBytes: number;
  readonly egressBytes: number;
}

/**
 * What one worker recorded since its last shipment. Keys are label values
 * joined by U+0001 in the order of the metric's labels; latency values are
 * [count per bucket..., count above the last bucket, sum of ms].
 */
export interface MetricsDelta {
  readonly buckets: readonly number[];
  readonly status: Readonly<Record<string, number>>;
  readonly latency: Readonly<Record<string, readonly number[]>>;
  readonly bandwidth: Readonly<Record<string, number>>;
}

/** Per-process recording: what the prometheus plugin's log phase calls. */
export class MetricsRecorder {
  readonly buckets: readonly number[];
  #status = new Map<string, number>();
  #latency = new Map<string, Float64Array>();
  #bandwidth = new Map<string, number>();

  constructor(buckets: readonly number[] = DEFAULT_LATENCY_BUCKETS) {
    this.buckets = buckets;
  }

  record(sample: RequestSample): void {
    const series = sample.route + SEPARATOR + sample.service + SEPARATOR + sample.consumer + SEPARATOR + sample.node;
    const statusKey =
      sample.status +
      SEPARATOR +
      sample.route +
      SEPARATOR +
      sample.matchedUri +
      SEPARATOR +
      sample.matchedHost +
      SEPARATOR +
      sample.service +
      SEPARATOR +
      sample.consumer +
      SEPARATOR +
      sample.node;
    this.#status.set(statusKey, (this.#status.get(statusKey) ?? 0) + 1);

    this.#observe('request' + SEPARATOR + series, sample.requestMs);
    if (sample.upstreamMs !== undefined) {
      this.#observe('upstream' + SEPARATOR + series, sample.upstreamMs);
      this.#observe('apisix' + SEPARATOR + series, Math.max(0, sample.requestMs - sample.upstreamMs));
    } else {
      this.#observe('apisix' + SEPARATOR + series, sample.requestMs);
    }

    const ingress = 'ingress' + SEPARATOR + series;
    const egress = 'egress' + SEPARATOR + series;
    this.#bandwidth.set(ingress, (this.#bandwidth.get(ingress) ?? 0) + sample.ingressBytes);
    this.#bandwidth.set(egress, (this.#bandwidth.get(egress) ?? 0) + sample.egressBytes);
  }

  #observe(key: string, ms: number): void {
    const buckets = this.buckets;
    let counts = this.#latency.get(key);
    if (counts === undefined) {
      // One slot per bucket, one above the last bucket, one for the sum.
      counts = new Float64Array(buckets.length + 2);
      this.#latency.set(key, counts);
    }
    let slot = 0;
    while (slot < buckets.length && ms > buckets[slot]) slot++;
    counts[slot]++;
    counts[buckets.length + 1] += ms;
  }

  /** True when something was recorded since the last takeDelta(). */
  get changed(): boolean {
    return this.#status.size > 0;
  }

  /** What was recorded since the last call, and start again from zero; undefined when nothing was. */
  takeDelta(): MetricsDelta | undefined {
    if (!this.changed) return undefined;
    const latency: Record<string, number[]> = {};
    for (const [key, counts] of this.#latency) latency[key] = Array.from(counts);
    const delta: MetricsDelta = {
      buckets: this.buckets,
      status: Object.fromEntries(this.#status),
      latency,
      bandwidth: Object.fromEntries(this.#bandwidth),
    };
    this.#status = new Map();
    this.#latency = new Map();
    this.#bandwidth = new Map();
    return delta;
  }
}

let processRecorder: MetricsRecorder | undefined;

/** This process's recorder (one per worker). */
export function workerMetrics(): MetricsRecorder {
  processRecorder ??= new MetricsRecorder();
  return processRecorder;
}

/** Ship this worker's changes every `intervalMs` (the timer does not keep the process alive); returns a stop function. */
export function startMetricsShipping(send: (delta: MetricsDelta) => void, intervalMs = 1000): () => void {
  const recorder = workerMetrics();
  const timer = setInterval(() => {
    const delta = recorder.takeDelta();
    if (delta !== undefined) send(delta);
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    const delta = recorder.takeDelta();
    if (delta !== undefined) send(delta);
  };
}

function labelsOf(names: readonly string[], key: string): Record<string, string> {
  const values = key.split(SEPARATOR);
  const labels: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) labels[names[i]] = values[i] ?? '';
  return labels;
}

interface HistogramSeries {
  readonly labels: Record<string, string>;
  readonly counts: Float64Array;
}

interface HistogramValue {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * The latency histogram merged from the workers' bucket counts. prom-client's
 * Histogram only takes single observations, so this is a metric object of the
 * shape prom-client's Registry renders (name, help, type, get()).
 */
class MergedHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly buckets: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
  }

  add(key: string, counts: readonly number[]): void {
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { labels: labelsOf(LATENCY_LABELS, key), counts: new Float64Array(this.buckets.length + 2) };
      this.#series.set(key, series);
    }
    for (let i = 0; i < series.counts.length && i < counts.length; i++) series.counts[i] += counts[i];
  }

  get size(): number {
    return this.#series.size;
  }

  async get() {
    const values: HistogramValue[] = [];
    const bucketCount = this.buckets.length;
    for (const { labels, counts } of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i < bucketCount; i++) {
        cumulative += counts[i];
        values.push({
          value: cumulative,
          labels: { ...labels, le: this.buckets[i] },
          metricName: `${this.name}_bucket`,
        });
      }
      cumulative += counts[bucketCount];
      values.push({ value: cumulative, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: counts[bucketCount + 1], labels, metricName: `${this.name}_sum` });
      values.push({ value: cumulative, labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface MetricsAggregatorOptions {
  /** APISIX's `metric_prefix`; default `apisix_`. */
  prefix?: string;
  buckets?: readonly number[];
}

/** The agent's view: every worker's deltas merged into prom-client metrics. */
export class MetricsAggregator {
  readonly registry = new Registry();
  readonly #status: Counter<string>;
  readonly #bandwidth: Counter<string>;
  readonly #latency: MergedHistogram;
  readonly #requests: Gauge<string>;
  readonly #etcdReachable: Gauge<string>;
  readonly #upstreamStatus: Gauge<string>;
  readonly #sharedDictCapacity: Gauge<string>;
  readonly #sharedDictFree: Gauge<string>;
  #requestsTotal = 0;
  #version = 0;

  constructor(options: MetricsAggregatorOptions = {}) {
    const prefix = options.prefix ?? 'apisix_';
    const registers = [this.registry];
    this.#status = new Counter({
      name: `${prefix}http_status`,
      help: 'HTTP status codes per service in APISIX',
      labelNames: [...STATUS_LABELS],
      registers,
    });
    this.#latency = new MergedHistogram(
      `${prefix}http_latency`,
      'HTTP request latency in milliseconds per service in APISIX',
      options.buckets ?? DEFAULT_LATENCY_BUCKETS,
    );
    this.registry.registerMetric(this.#latency as unknown as Metric);
    this.#bandwidth = new Counter({
      name: `${prefix}bandwidth`,
      help: 'Total bandwidth in bytes consumed per service in APISIX',
      labelNames: [...BANDWIDTH_LABELS],
      registers,
    });
    this.#requests = new Gauge({
      name: `${prefix}http_requests_total`,
      help: 'The total number of client requests',
      registers,
    });
    this.#etcdReachable = new Gauge({
      name: `${prefix}etcd_reachable`,
      help: 'Config server etcd reachable from APISIX, 0 is unreachable',
      registers,
    });
    this.#upstreamStatus = new Gauge({
      name: `${prefix}upstream_status`,
      help: 'Upstream status from health check',
      labelNames: ['name', 'ip', 'port'],
      registers,
    });
    this.#sharedDictCapacity = new Gauge({
      name: `${prefix}shared_dict_capacity_bytes`,
      help: 'The capacity of each nginx shared DICT since APISIX start',
      labelNames: ['name'],
      registers,
    });
    this.#sharedDictFree = new Gauge({
      name: `${prefix}shared_dict_free_space_bytes`,
      help: 'The free space of each nginx shared DICT since APISIX start',
      labelNames: ['name'],
      registers,
    });
    new Gauge({
      name: `${prefix}node_info`,
      help: 'Info of APISIX node',
      labelNames: ['hostname'],
      registers,
    }).set({ hostname: hostname() }, 1);
  }

  /** Merge one worker's delta. */
  apply(delta: MetricsDelta | undefined): void {
    if (delta === undefined) return;
    for (const [key, count] of Object.entries(delta.status)) {
      this.#status.inc(labelsOf(STATUS_LABELS, key), count);
      this.#requestsTotal += count;
    }
    for (const [key, counts] of Object.entries(delta.latency)) this.#latency.add(key, counts);
    for (const [key, bytes] of Object.entries(delta.bandwidth))
      this.#bandwidth.inc(labelsOf(BANDWIDTH_LABELS, key), bytes);
    this.#requests.set(this.#requestsTotal);
    this.#version++;
  }

  setEtcdReachable(reachable: boolean): void {
    this.#etcdReachable.set(reachable ? 1 : 0);
    this.#version++;
  }

  /** A health-checked upstream node: 1 healthy, 0 unhealthy. */
  setUpstreamStatus(name: string, ip: string, port: number, healthy: boolean): void {
    this.#upstreamStatus.set({ name, ip, port: String(port) }, healthy ? 1 : 0);
    this.#version++;
  }

  setSharedDict(name: string, capacityBytes: number, freeBytes: number): void {
    this.#sharedDictCapacity.set({ name }, capacityBytes);
    this.#sharedDictFree.set({ name }, freeBytes);
    this.#version++;
  }

  /** Changes with every update; a cached rendering of an older version is stale. */
  get version(): number {
    return this.#version;
  }

  /** The number of latency series (three per route, service, consumer and node seen). */
  get latencySeries(): number {
    return this.#latency.size;
  }
}

/** The exposition text of everything merged so far (runs in the agent). */
export function renderMetrics(aggregator: MetricsAggregator): Promise<string> {
  return aggregator.registry.metrics();
}

export interface MetricsServerOptions {
  host?: string;
  port?: number;
  path?: string;
  /** A scrape within this long of the last rendering gets the cached text; default 1000 ms. */
  maxAgeMs?: number;
}

export interface MetricsServer {
  readonly port: number;
  readonly server: Server;
  /** Renderings made (cache misses). */
  readonly renders: number;
  close(): Promise<void>;
}

/**
 * The metrics listener (127.0.0.1:9091/apisix/prometheus/metrics by default),
 * run by the agent. The text is rendered at most once per `maxAgeMs` and only
 * when something changed; concurrent scrapes share one rendering.
 */
export async function startMetricsServer(
  aggregator: MetricsAggregator,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const path = options.path ?? DEFAULT_METRICS_PATH;
  const maxAgeMs = options.maxAgeMs ?? 1000;
  let cached: { text: string; at: number; version: number } | undefined;
  let rendering: Promise<string> | undefined;
  let renders = 0;

  const current = (): Promise<string> => {
    const now = Date.now();
    if (cached !== undefined && (cached.version === aggregator.version || now - cached.at < maxAgeMs)) {
      return Promise.resolve(cached.text);
    }
    rendering ??= (async () => {
      try {
        const version = aggregator.version;
        const text = await renderMetrics(aggregator);
        renders++;
        cached = { text, at: Date.now(), version };
        return text;
      } finally {
        rendering = undefined;
      }
    })();
    return rendering;
  };

  const server = createServer((request, response) => {
    const url = request.url ?? '/';
    const pathOnly = url.indexOf('?') < 0 ? url : url.slice(0, url.indexOf('?'));
    if (pathOnly !== path || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end('{"error_msg":"404 Route Not Found"}\n');
      return;
    }
    current().then(
      (text) => {
        response.writeHead(200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end(`failed to render metrics: ${(error as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_METRICS_PORT, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    server,
    get renders() {
      return renders;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
