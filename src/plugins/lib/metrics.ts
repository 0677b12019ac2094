// Prometheus metrics with APISIX's names, kept off the request path.
//
// A scrape never touches a worker. Each worker records into plain maps in
// its own process (MetricsRecorder: a counter bump and a bucket index per
// request, no label objects, no text) and ships only what changed since the
// last shipment, as a small JSON-able delta, about once a second. The agent
// merges the deltas of every worker (MetricsAggregator) and renders the
// exposition text off the request path, cached per route until it changes,
// for the metrics listener (startMetricsServer) — the model of APISIX PR
// #12383. The gauges are prom-client's; the per-route families are written
// directly (see MetricsAggregator for why).
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

import { Gauge, Registry } from 'prom-client';

/** APISIX's default latency buckets, in milliseconds. */
export const DEFAULT_LATENCY_BUCKETS: readonly number[] = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];

export const DEFAULT_METRICS_PATH = '/apisix/prometheus/metrics';
export const DEFAULT_METRICS_PORT = 9091;

const LATENCY_TYPES = ['request', 'upstream', 'apisix'] as const;

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

/** What one label set (route, matched uri and host, service, consumer, node) counted since the last shipment. */
export interface SeriesDelta {
  /** [route, matched_uri, matched_host, service, consumer, node]. */
  readonly labels: readonly string[];
  /** [status code, count, status code, count, ...]. */
  readonly status: readonly number[];
  /**
   * Sparse [index, value] pairs over the latency numbers: per latency type
   * (request, upstream, apisix) `buckets.length + 2` slots — the count per
   * bucket, the count above the last bucket, the sum of ms.
   */
  readonly latency: readonly number[];
  readonly ingress: number;
  readonly egress: number;
}

/** What one worker recorded since its last shipment (plain JSON, for IPC). */
export interface MetricsDelta {
  readonly buckets: readonly number[];
  readonly series: readonly SeriesDelta[];
}

/** The counts of one label set in a worker; kept and zeroed after shipping so steady traffic allocates nothing. */
class SeriesCell {
  readonly labels: readonly string[];
  readonly latency: Float64Array;
  readonly statusCodes: number[] = [];
  readonly statusCounts: number[] = [];
  ingress = 0;
  egress = 0;
  changed = false;

  constructor(labels: readonly string[], bucketCount: number) {
    this.labels = labels;
    this.latency = new Float64Array(LATENCY_TYPES.length * (bucketCount + 2));
  }
}

type CellTree = Map<string, CellTree | SeriesCell>;

/** The subtree under `key`, created when absent. */
function descend(level: CellTree, key: string): CellTree {
  let next = level.get(key) as CellTree | undefined;
  if (next === undefined) {
    next = new Map();
    level.set(key, next);
  }
  return next;
}

/** Per-process recording: what the prometheus plugin's log phase calls. */
export class MetricsRecorder {
  readonly buckets: readonly number[];
  // Label values are looked up level by level in nested maps: no key string is built per request.
  readonly #cells: CellTree = new Map();
  #changed: SeriesCell[] = [];

  constructor(buckets: readonly number[] = DEFAULT_LATENCY_BUCKETS) {
    this.buckets = buckets;
  }

  #cell(sample: RequestSample): SeriesCell {
    const byNode = descend(
      descend(
        descend(descend(descend(this.#cells, sample.route), sample.matchedUri), sample.matchedHost),
        sample.service,
      ),
      sample.consumer,
    );
    let cell = byNode.get(sample.node) as SeriesCell | undefined;
    if (cell === undefined) {
      const labels = [
        sample.route,
        sample.matchedUri,
        sample.matchedHost,
        sample.service,
        sample.consumer,
        sample.node,
      ];
      cell = new SeriesCell(labels, this.buckets.length);
      byNode.set(sample.node, cell);
    }
    return cell;
  }

  record(sample: RequestSample): void {
    const cell = this.#cell(sample);
    if (!cell.changed) {
      cell.changed = true;
      this.#changed.push(cell);
    }
    const codes = cell.statusCodes;
    let index = codes.indexOf(sample.status);
    if (index < 0) {
      index = codes.length;
      codes.push(sample.status);
      cell.statusCounts.push(0);
    }
    cell.statusCounts[index]++;

    const stride = this.buckets.length + 2;
    this.#observe(cell.latency, 0, sample.requestMs);
    if (sample.upstreamMs !== undefined) {
      this.#observe(cell.latency, stride, sample.upstreamMs);
      this.#observe(cell.latency, 2 * stride, Math.max(0, sample.requestMs - sample.upstreamMs));
    } else {
      this.#observe(cell.latency, 2 * stride, sample.requestMs);
    }
    cell.ingress += sample.ingressBytes;
    cell.egress += sample.egressBytes;
  }

  #observe(latency: Float64Array, offset: number, ms: number): void {
    const buckets = this.buckets;
    let slot = 0;
    while (slot < buckets.length && ms > buckets[slot]) slot++;
    latency[offset + slot]++;
    latency[offset + buckets.length + 1] += ms;
  }

  /** True when something was recorded since the last takeDelta(). */
  get changed(): boolean {
    return this.#changed.length > 0;
  }

  /** What was recorded since the last call, and start again from zero; undefined when nothing was. */
  takeDelta(): MetricsDelta | undefined {
    if (this.#changed.length === 0) return undefined;
    const series: SeriesDelta[] = [];
    for (const cell of this.#changed) {
      const status: number[] = [];
      for (let i = 0; i < cell.statusCodes.length; i++) {
        if (cell.statusCounts[i] > 0) status.push(cell.statusCodes[i], cell.statusCounts[i]);
        cell.statusCounts[i] = 0;
      }
      const latency: number[] = [];
      const counts = cell.latency;
      for (let i = 0; i < counts.length; i++) {
        if (counts[i] === 0) continue;
        latency.push(i, counts[i]);
        counts[i] = 0;
      }
      series.push({ labels: cell.labels, status, latency, ingress: cell.ingress, egress: cell.egress });
      cell.ingress = 0;
      cell.egress = 0;
      cell.changed = false;
    }
    this.#changed = [];
    return { buckets: this.buckets, series };
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

function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c));
}

/** One label set's totals across every worker, with its label text escaped once. */
class MergedSeries {
  /** `route="..",service="..",consumer="..",node=".."`: the latency and bandwidth labels after `type`. */
  readonly commonLabels: string;
  /** `route="..",matched_uri="..",matched_host="..",service="..",consumer="..",node=".."`: the status labels after `code`. */
  readonly statusLabels: string;
  readonly status = new Map<number, number>();
  readonly latency: Float64Array;
  ingress = 0;
  egress = 0;
  /** The lines of each family as last rendered (bytes: joining 60 MB of Buffers is a copy, of strings a flatten); undefined after a change. */
  statusText: Buffer | undefined;
  latencyText: Buffer | undefined;
  bandwidthText: Buffer | undefined;

  constructor(labels: readonly string[], stride: number) {
    const [route, matchedUri, matchedHost, service, consumer, node] = labels.map((value) =>
      escapeLabelValue(value ?? ''),
    );
    this.commonLabels = `route="${route}",service="${service}",consumer="${consumer}",node="${node}"`;
    this.statusLabels =
      `route="${route}",matched_uri="${matchedUri}",matched_host="${matchedHost}",` +
      `service="${service}",consumer="${consumer}",node="${node}"`;
    this.latency = new Float64Array(LATENCY_TYPES.length * stride);
  }
}

// Rendering yields to the event loop between chunks of series so the agent keeps serving its other duties.
const SERIES_PER_CHUNK = 1000;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface MetricsAggregatorOptions {
  /** APISIX's `metric_prefix`; default `apisix_`. */
  prefix?: string;
  buckets?: readonly number[];
}

/**
 * The agent's view: every worker's deltas merged. The per-route families
 * (http_status, http_latency, bandwidth) are kept per label set and written
 * as exposition text directly: with 10,000 routes they are ~600,000 lines,
 * which prom-client's generic label handling takes seconds to merge and
 * render. The other metrics are prom-client gauges in `registry`.
 */
export class MetricsAggregator {
  readonly registry = new Registry();
  readonly prefix: string;
  readonly buckets: readonly number[];
  readonly #series = new Map<string, MergedSeries>();
  readonly #requests: Gauge<string>;
  readonly #etcdReachable: Gauge<string>;
  readonly #upstreamStatus: Gauge<string>;
  readonly #sharedDictCapacity: Gauge<string>;
  readonly #sharedDictFree: Gauge<string>;
  #requestsTotal = 0;
  #version = 0;

  constructor(options: MetricsAggregatorOptions = {}) {
    const prefix = options.prefix ?? 'apisix_';
    this.prefix = prefix;
    this.buckets = options.buckets ?? DEFAULT_LATENCY_BUCKETS;
    const registers = [this.registry];
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
    const stride = this.buckets.length + 2;
    if (delta.buckets.length !== this.buckets.length) return;
    for (const { labels, status, latency, ingress, egress } of delta.series) {
      const key = labels.join('\u0001');
      let series = this.#series.get(key);
      if (series === undefined) {
        series = new MergedSeries(labels, stride);
        this.#series.set(key, series);
      }
      for (let i = 0; i < status.length; i += 2) {
        series.status.set(status[i], (series.status.get(status[i]) ?? 0) + status[i + 1]);
        this.#requestsTotal += status[i + 1];
      }
      // Sparse [index, value] pairs over the flat latency array.
      for (let i = 0; i < latency.length; i += 2) series.latency[latency[i]] += latency[i + 1];
      series.ingress += ingress;
      series.egress += egress;
      series.statusText = series.latencyText = series.bandwidthText = undefined;
    }
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

  /** The number of label sets (route, matched uri and host, service, consumer, node) seen. */
  get seriesCount(): number {
    return this.#series.size;
  }

  /**
   * The per-route families as exposition text: http_status, http_latency,
   * bandwidth. Each label set's lines are kept until it changes, so a scrape
   * re-renders only the routes that saw traffic since the last one.
   */
  async renderRouteFamilies(): Promise<Buffer[]> {
    const prefix = this.prefix;
    const all = [...this.#series.values()];
    const parts: Buffer[] = [];
    let rendered = 0;
    // Yields between chunks of freshly rendered series: the agent keeps serving its other duties.
    const pace = async () => {
      if (++rendered % SERIES_PER_CHUNK === 0) await nextTurn();
    };

    parts.push(
      Buffer.from(
        `# HELP ${prefix}http_status HTTP status codes per service in APISIX\n# TYPE ${prefix}http_status counter\n`,
      ),
    );
    for (const series of all) {
      if (series.statusText === undefined) {
        let text = '';
        for (const [code, count] of series.status) {
          text += `${prefix}http_status{code="${code}",${series.statusLabels}} ${count}\n`;
        }
        series.statusText = Buffer.from(text);
        await pace();
      }
      parts.push(series.statusText);
    }

    const name = `${prefix}http_latency`;
    parts.push(
      Buffer.from(
        `# HELP ${name} HTTP request latency in milliseconds per service in APISIX\n# TYPE ${name} histogram\n`,
      ),
    );
    for (const series of all) {
      if (series.latencyText === undefined) {
        series.latencyText = Buffer.from(this.#latencyLines(name, series));
        await pace();
      }
      parts.push(series.latencyText);
    }

    parts.push(
      Buffer.from(
        `# HELP ${prefix}bandwidth Total bandwidth in bytes consumed per service in APISIX\n` +
          `# TYPE ${prefix}bandwidth counter\n`,
      ),
    );
    for (const series of all) {
      series.bandwidthText ??= Buffer.from(
        `${prefix}bandwidth{type="egress",${series.commonLabels}} ${series.egress}\n` +
          `${prefix}bandwidth{type="ingress",${series.commonLabels}} ${series.ingress}\n`,
      );
      parts.push(series.bandwidthText);
    }
    return parts;
  }

  #latencyLines(name: string, series: MergedSeries): string {
    const { latency, commonLabels } = series;
    const bucketCount = this.buckets.length;
    const stride = bucketCount + 2;
    let text = '';
    for (let type = 0; type < LATENCY_TYPES.length; type++) {
      const offset = type * stride;
      let count = 0;
      for (let slot = 0; slot <= bucketCount; slot++) count += latency[offset + slot];
      // No observation of this type (no upstream answered): no series, as in APISIX.
      if (count === 0) continue;
      const labels = `{type="${LATENCY_TYPES[type]}",${commonLabels}`;
      let cumulative = 0;
      for (let slot = 0; slot < bucketCount; slot++) {
        cumulative += latency[offset + slot];
        text += `${name}_bucket${labels},le="${this.buckets[slot]}"} ${cumulative}\n`;
      }
      text += `${name}_bucket${labels},le="+Inf"} ${count}\n`;
      text += `${name}_sum${labels}} ${latency[offset + bucketCount + 1]}\n`;
      text += `${name}_count${labels}} ${count}\n`;
    }
    return text;
  }
}

/** The exposition text of everything merged so far (runs in the agent). */
export async function renderMetricsBuffer(aggregator: MetricsAggregator): Promise<Buffer> {
  const parts = await aggregator.renderRouteFamilies();
  parts.push(Buffer.from('\n' + (await aggregator.registry.metrics())));
  return Buffer.concat(parts);
}

/** renderMetricsBuffer() as text. */
export async function renderMetrics(aggregator: MetricsAggregator): Promise<string> {
  return (await renderMetricsBuffer(aggregator)).toString();
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
  let cached: { text: Buffer; at: number; version: number } | undefined;
  let rendering: Promise<Buffer> | undefined;
  let renders = 0;

  const current = (): Promise<Buffer> => {
    const now = Date.now();
    if (cached !== undefined && (cached.version === aggregator.version || now - cached.at < maxAgeMs)) {
      return Promise.resolve(cached.text);
    }
    rendering ??= (async () => {
      try {
        const version = aggregator.version;
        const text = await renderMetricsBuffer(aggregator);
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
