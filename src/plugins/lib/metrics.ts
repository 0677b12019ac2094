// Prometheus metrics with APISIX's names, kept off the request path.
//
// A scrape never touches a worker. Each worker records into counters of its
// own process (MetricsRecorder): the prometheus plugin finds its route's
// RouteMeter (label text resolved once per route and config version) and
// bumps a few numbers of one series cell. About once a second the worker
// ships what changed as a MetricsDelta: series ids with their label sets only
// the first time, and the counts as one base64 Float64Array (cheap to build,
// to serialise over IPC and to relay). The agent merges every worker's deltas
// (MetricsAggregator) and renders the exposition text for the metrics
// listener (startMetricsServer), both in a low-priority process of its own
// (./metrics-exporter.ts) so neither competes with the workers for a core. The
// gauges are prom-client's; the per-route families are written directly
// (see MetricsAggregator for why).
//
// Without shipping (one process, as in tests) the aggregator can read the
// recorder directly: aggregator.apply(workerMetrics().takeDelta()).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { createGzip } from 'node:zlib';

import { Gauge, Registry } from 'prom-client';

import { DEFAULT_PROMETHEUS_REFRESH_INTERVAL } from '../../config/defaults';
import type { Route, Service } from '../../schema/types';
import { ByteArena } from './byte-arena';
import type { ConfigSnapshot } from '../../store/types';

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

/**
 * What one worker recorded since its last shipment (plain JSON, for IPC).
 *
 * `counts` is one flat array of numbers holding, per changed series:
 *   id, n, [status code, count] × n, m, [latency index, value] × m, ingress bytes, egress bytes
 * where the latency index runs over, per latency type (request, upstream,
 * apisix), `buckets.length + 2` slots: the count per bucket, the count above
 * the last bucket, the sum of ms.
 */
export interface MetricsDelta {
  /** Series ids are per source (the worker's pid). */
  readonly source: number;
  readonly buckets: readonly number[];
  /** Label sets of series this source names for the first time: [id, [route, matched_uri, matched_host, service, consumer, node]]. */
  readonly named: ReadonlyArray<readonly [number, readonly string[]]>;
  readonly counts: readonly number[];
}

/** One series of a delta, decoded (readDelta). */
export interface SeriesDelta {
  readonly id: number;
  /** [status code, count, status code, count, ...]. */
  readonly status: number[];
  /** Sparse [index, value] pairs over the latency slots (see MetricsDelta). */
  readonly latency: number[];
  readonly ingress: number;
  readonly egress: number;
}

/** Decode the counts of a delta, series by series. */
export function readDelta(delta: MetricsDelta): SeriesDelta[] {
  const numbers = delta.counts;
  const series: SeriesDelta[] = [];
  let at = 0;
  while (at < numbers.length) {
    const id = numbers[at++];
    const statusLength = 2 * numbers[at++];
    const status = numbers.slice(at, at + statusLength);
    at += statusLength;
    const latencyLength = 2 * numbers[at++];
    const latency = numbers.slice(at, at + latencyLength);
    at += latencyLength;
    series.push({ id, status, latency, ingress: numbers[at], egress: numbers[at + 1] });
    at += 2;
  }
  return series;
}

/** The counts of one label set in a worker; kept and zeroed after shipping so steady traffic allocates nothing. */
class SeriesCell {
  readonly id: number;
  readonly labels: readonly string[];
  readonly latency: Float64Array;
  readonly statusCodes: number[] = [];
  readonly statusCounts: number[] = [];
  ingress = 0;
  egress = 0;
  changed = false;
  /** The agent knows this id (its labels went out in an earlier shipment). */
  named = false;

  constructor(id: number, labels: readonly string[], bucketCount: number) {
    this.id = id;
    this.labels = labels;
    this.latency = new Float64Array(LATENCY_TYPES.length * (bucketCount + 2));
  }
}

/** A route's uri or host patterns: APISIX reports the one that matched (`/p/*`, `*.example.com`). */
type Patterns = readonly string[];

function matchUri(patterns: Patterns, path: string): string {
  for (const pattern of patterns) {
    if (pattern.endsWith('*') ? path.startsWith(pattern.slice(0, -1)) : path === pattern) return pattern;
  }
  return patterns[0] ?? '';
}

function matchHost(patterns: Patterns, host: string): string {
  const bare = host.toLowerCase().replace(/:\d+$/, '');
  for (const pattern of patterns) {
    if (pattern.startsWith('*') ? bare.endsWith(pattern.slice(1).toLowerCase()) : bare === pattern.toLowerCase()) {
      return pattern;
    }
  }
  return patterns[0] ?? '';
}

/** What a route contributes to its series' labels, from the configuration (or the request's vars without one). */
export interface RouteFacts {
  /** The `route` label: the id, or the name with prefer_name. */
  readonly route: string;
  /** The `service` label: the id, or the name with prefer_name. */
  readonly service: string;
  /** The route's uri patterns (uri, or uris); one pattern is the label as is. */
  readonly uris: Patterns;
  readonly hosts: Patterns;
}

/**
 * One route's recording state for one config version: its label text resolved
 * once, and its series cells by (matched uri, matched host, consumer, node).
 */
export class RouteMeter {
  readonly routeId: string;
  readonly serviceId: string;
  readonly preferName: boolean;
  readonly version: number;
  readonly #facts: RouteFacts;
  readonly #recorder: MetricsRecorder;
  readonly #cells = new Map<string, SeriesCell>();
  // Consecutive requests of a route mostly share every label: the last cell is checked before any map.
  #lastUri = '';
  #lastHost = '';
  #lastConsumer = '';
  #lastNode = '';
  #lastCell: SeriesCell | undefined;

  constructor(
    recorder: MetricsRecorder,
    routeId: string,
    serviceId: string,
    preferName: boolean,
    version: number,
    facts: RouteFacts,
  ) {
    this.#recorder = recorder;
    this.routeId = routeId;
    this.serviceId = serviceId;
    this.preferName = preferName;
    this.version = version;
    this.#facts = facts;
  }

  /** True when the matched uri depends on the request path (a route with several uris). */
  get needsPath(): boolean {
    return this.#facts.uris.length > 1;
  }

  /** True when the matched host depends on the request's Host (a route with several hosts). */
  get needsHost(): boolean {
    return this.#facts.hosts.length > 1;
  }

  /**
   * Count one request. `path` and `host` are read only when needsPath/needsHost
   * (pass '' otherwise); `upstreamMs` is undefined when no upstream answered.
   */
  record(
    status: number,
    path: string,
    host: string,
    consumer: string,
    node: string,
    requestMs: number,
    upstreamMs: number | undefined,
    ingressBytes: number,
    egressBytes: number,
  ): void {
    const facts = this.#facts;
    const uri = facts.uris.length > 1 ? matchUri(facts.uris, path) : (facts.uris[0] ?? '');
    const matchedHost = facts.hosts.length > 1 ? matchHost(facts.hosts, host) : (facts.hosts[0] ?? '');
    let cell = this.#lastCell;
    if (
      cell === undefined ||
      node !== this.#lastNode ||
      consumer !== this.#lastConsumer ||
      uri !== this.#lastUri ||
      matchedHost !== this.#lastHost
    ) {
      const key = `${uri}\u0001${matchedHost}\u0001${consumer}\u0001${node}`;
      cell = this.#cells.get(key);
      if (cell === undefined) {
        cell = this.#recorder.cellFor([facts.route, uri, matchedHost, facts.service, consumer, node]);
        this.#cells.set(key, cell);
      }
      this.#lastCell = cell;
      this.#lastUri = uri;
      this.#lastHost = matchedHost;
      this.#lastConsumer = consumer;
      this.#lastNode = node;
    }
    this.#recorder.count(cell, status, requestMs, upstreamMs, ingressBytes, egressBytes);
  }
}

/** Index of a config version's routes and services by id, built on the first lookup after a change. */
interface ConfigIndex {
  readonly routes: Map<string, Route>;
  readonly services: Map<string, Service>;
}

/** Per-process recording: what the prometheus plugin's log phase calls. */
export class MetricsRecorder {
  readonly buckets: readonly number[];
  readonly #cells = new Map<string, SeriesCell>();
  readonly #meters = new Map<string, RouteMeter>();
  #changed: SeriesCell[] = [];
  #nextId = 1;
  #config: ConfigSnapshot | undefined;
  #index: ConfigIndex | undefined;
  #version = 0;

  constructor(buckets: readonly number[] = DEFAULT_LATENCY_BUCKETS) {
    this.buckets = buckets;
  }

  /** The configuration route labels come from (the worker calls this with every version it applies). */
  useConfig(snapshot: ConfigSnapshot): void {
    this.#config = snapshot;
    this.#index = undefined;
    this.#version++;
    this.#meters.clear();
  }

  /** The meter of a route for the current config version, or undefined (then openMeter). */
  meter(routeId: string, serviceId: string, preferName: boolean): RouteMeter | undefined {
    const meter = this.#meters.get(routeId);
    if (meter === undefined || meter.serviceId !== serviceId || meter.preferName !== preferName) return undefined;
    return meter;
  }

  /**
   * Resolve a route's labels and keep its meter until the configuration changes.
   * `readVar` answers the request's vars (route_name, service_name, matched_uri, matched_host)
   * for what the configuration does not hold.
   */
  openMeter(routeId: string, serviceId: string, preferName: boolean, readVar: (name: string) => string): RouteMeter {
    const meter = new RouteMeter(
      this,
      routeId,
      serviceId,
      preferName,
      this.#version,
      this.#routeFacts(routeId, serviceId, preferName, readVar),
    );
    this.#meters.set(routeId, meter);
    return meter;
  }

  #routeFacts(routeId: string, serviceId: string, preferName: boolean, readVar: (name: string) => string): RouteFacts {
    const index = this.#configIndex();
    const route = index?.routes.get(routeId);
    const service = serviceId === '' ? undefined : index?.services.get(serviceId);
    if (route === undefined) {
      // No configuration here (one process, tests) or a route the index does not know: what the vars say.
      const uri = readVar('matched_uri');
      const host = readVar('matched_host');
      return {
        route: preferName ? readVar('route_name') || routeId : routeId,
        service: preferName ? readVar('service_name') || serviceId : serviceId,
        uris: uri === '' ? [] : [uri],
        hosts: host === '' ? [] : [host],
      };
    }
    const uris = route.uris ?? (route.uri !== undefined ? [route.uri] : []);
    const hosts = route.hosts ?? (route.host !== undefined ? [route.host] : (service?.hosts ?? []));
    return {
      route: preferName ? route.name || routeId : routeId,
      service: preferName ? service?.name || serviceId : serviceId,
      uris,
      hosts,
    };
  }

  #configIndex(): ConfigIndex | undefined {
    const config = this.#config;
    if (config === undefined) return undefined;
    if (this.#index === undefined) {
      const routes = new Map<string, Route>();
      for (const route of config.routes) if (route.id !== undefined) routes.set(String(route.id), route);
      const services = new Map<string, Service>();
      for (const service of config.services) if (service.id !== undefined) services.set(String(service.id), service);
      this.#index = { routes, services };
    }
    return this.#index;
  }

  /** The cell of one label set [route, matched_uri, matched_host, service, consumer, node], created when new. */
  cellFor(labels: readonly string[]): SeriesCell {
    const key = labels.join('\u0001');
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      cell = new SeriesCell(this.#nextId++, labels, this.buckets.length);
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** Count one request into a cell (RouteMeter.record and record() end here). */
  count(
    cell: SeriesCell,
    status: number,
    requestMs: number,
    upstreamMs: number | undefined,
    ingressBytes: number,
    egressBytes: number,
  ): void {
    if (!cell.changed) {
      cell.changed = true;
      this.#changed.push(cell);
    }
    const codes = cell.statusCodes;
    let index = codes.indexOf(status);
    if (index < 0) {
      index = codes.length;
      codes.push(status);
      cell.statusCounts.push(0);
    }
    cell.statusCounts[index]++;

    const stride = this.buckets.length + 2;
    this.#observe(cell.latency, 0, requestMs);
    if (upstreamMs !== undefined) {
      this.#observe(cell.latency, stride, upstreamMs);
      this.#observe(cell.latency, 2 * stride, Math.max(0, requestMs - upstreamMs));
    } else {
      this.#observe(cell.latency, 2 * stride, requestMs);
    }
    cell.ingress += ingressBytes;
    cell.egress += egressBytes;
  }

  /** Count one request given all its labels (slower than a RouteMeter: the label set is looked up each time). */
  record(sample: RequestSample): void {
    const cell = this.cellFor([
      sample.route,
      sample.matchedUri,
      sample.matchedHost,
      sample.service,
      sample.consumer,
      sample.node,
    ]);
    this.count(cell, sample.status, sample.requestMs, sample.upstreamMs, sample.ingressBytes, sample.egressBytes);
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

  /** Name every series again in its next shipment (the agent that knew the ids is gone, or missed a shipment). */
  renameAll(): void {
    for (const cell of this.#cells.values()) cell.named = false;
  }

  /** What was recorded since the last call, and start again from zero; undefined when nothing was. */
  takeDelta(maxSeries = Infinity): MetricsDelta | undefined {
    if (this.#changed.length === 0) return undefined;
    let changed = this.#changed;
    if (changed.length > maxSeries) {
      this.#changed = changed.slice(maxSeries);
      changed = changed.slice(0, maxSeries);
    } else {
      this.#changed = [];
    }
    // Small integers mostly: as JSON about 3 characters each, a third of what base64 doubles would take.
    const numbers: number[] = [];
    const named: Array<readonly [number, readonly string[]]> = [];
    for (const cell of changed) {
      if (!cell.named) {
        cell.named = true;
        named.push([cell.id, cell.labels]);
      }
      numbers.push(cell.id, 0);
      const statusCountAt = numbers.length - 1;
      let statusPairs = 0;
      for (let i = 0; i < cell.statusCodes.length; i++) {
        if (cell.statusCounts[i] === 0) continue;
        numbers.push(cell.statusCodes[i], cell.statusCounts[i]);
        cell.statusCounts[i] = 0;
        statusPairs++;
      }
      numbers[statusCountAt] = statusPairs;
      numbers.push(0);
      const latencyCountAt = numbers.length - 1;
      let latencyPairs = 0;
      const latency = cell.latency;
      for (let i = 0; i < latency.length; i++) {
        if (latency[i] === 0) continue;
        numbers.push(i, latency[i]);
        latency[i] = 0;
        latencyPairs++;
      }
      numbers[latencyCountAt] = latencyPairs;
      numbers.push(cell.ingress, cell.egress);
      cell.ingress = 0;
      cell.egress = 0;
      cell.changed = false;
    }
    return { source: process.pid, buckets: this.buckets, named, counts: numbers };
  }
}

let processRecorder: MetricsRecorder | undefined;

/** This process's recorder (one per worker). */
export function workerMetrics(): MetricsRecorder {
  processRecorder ??= new MetricsRecorder();
  return processRecorder;
}

/**
 * At most this many series per shipment: encoding and sending 1,000 series
 * holds the worker's event loop about a millisecond, and the rest follow on
 * later turns, so 10,000 busy routes never stall requests for one long block.
 */
export const SERIES_PER_SHIPMENT = 1000;

/** Ship this worker's changes every `intervalMs` (the timer does not keep the process alive); returns a stop function. */
export function startMetricsShipping(send: (delta: MetricsDelta) => void, intervalMs = 1000): () => void {
  const recorder = workerMetrics();
  let stopped = false;
  const shipSlice = (): void => {
    if (stopped) return;
    const delta = recorder.takeDelta(SERIES_PER_SHIPMENT);
    if (delta === undefined) return;
    send(delta);
    // Requests that arrived meanwhile run before the next slice.
    if (recorder.changed) setImmediate(shipSlice);
  };
  const timer = setInterval(shipSlice, intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    for (let delta = recorder.takeDelta(); delta !== undefined; delta = recorder.takeDelta()) send(delta);
  };
}

function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c));
}

/** The per-route families: http_status, http_latency, bandwidth. */
const FAMILIES = 3;

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
  /** False after a change: its lines are written afresh at the next rendering, not copied from the last one. */
  rendered = false;
  /** Where its lines of each family (status, latency, bandwidth) lie in the last rendering: start, end per family. */
  readonly spans = new Int32Array(2 * FAMILIES);

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

/** A health-checked upstream node in apisix_upstream_status. */
export interface UpstreamNodeStatus {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly healthy: boolean;
}

export interface MetricsAggregatorOptions {
  /** APISIX's `metric_prefix`; default `apisix_`. */
  prefix?: string;
  buckets?: readonly number[];
}

/** Rendered text is handed out in pieces of about this size (one write each). */
const CHUNK_BYTES = 256 * 1024;

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
  /** Per source (worker pid): its series ids. */
  readonly #sources = new Map<number, Map<number, MergedSeries>>();
  readonly #requests: Gauge<string>;
  #etcdReachable: Gauge<string> | undefined;
  readonly #upstreamStatus: Gauge<string>;
  readonly #sharedDictCapacity: Gauge<string>;
  readonly #sharedDictFree: Gauge<string>;
  #requestsTotal = 0;
  #unnamed = 0;
  #version = 0;
  /** The arena of the last rendering: the lines of label sets that did not change since are copied from it. */
  #lastArena: ByteArena | undefined;

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
    let ids = this.#sources.get(delta.source);
    if (ids === undefined) {
      ids = new Map();
      this.#sources.set(delta.source, ids);
    }
    for (const [id, labels] of delta.named) {
      const key = labels.join('\u0001');
      let series = this.#series.get(key);
      if (series === undefined) {
        series = new MergedSeries(labels, stride);
        this.#series.set(key, series);
      }
      ids.set(id, series);
    }
    // The layout of MetricsDelta.counts, walked in place.
    const numbers = delta.counts;
    let at = 0;
    while (at < numbers.length) {
      const series = ids.get(numbers[at]);
      const statusEnd = at + 2 + 2 * numbers[at + 1];
      const latencyEnd = statusEnd + 1 + 2 * numbers[statusEnd];
      const next = latencyEnd + 2;
      // An id named in a shipment this aggregator never saw (the agent restarted): the worker names it again.
      if (series === undefined) {
        this.#unnamed++;
        at = next;
        continue;
      }
      for (let i = at + 2; i < statusEnd; i += 2) {
        series.status.set(numbers[i], (series.status.get(numbers[i]) ?? 0) + numbers[i + 1]);
        this.#requestsTotal += numbers[i + 1];
      }
      // Sparse [index, value] pairs over the flat latency array.
      for (let i = statusEnd + 1; i < latencyEnd; i += 2) series.latency[numbers[i]] += numbers[i + 1];
      series.ingress += numbers[latencyEnd];
      series.egress += numbers[latencyEnd + 1];
      series.rendered = false;
      at = next;
    }
    this.#requests.set(this.#requestsTotal);
    this.#version++;
  }

  /** Series shipments dropped because their id was never named to this aggregator. */
  get unnamedShipments(): number {
    return this.#unnamed;
  }

  /** Only a gateway with etcd shows apisix_etcd_reachable (APISIX has no other config server). */
  setEtcdReachable(reachable: boolean): void {
    this.#etcdReachable ??= new Gauge({
      name: `${this.prefix}etcd_reachable`,
      help: 'Config server etcd reachable from APISIX, 0 is unreachable',
      registers: [this.registry],
    });
    this.#etcdReachable.set(reachable ? 1 : 0);
    this.#version++;
  }

  /** A health-checked upstream node: 1 healthy, 0 unhealthy. */
  setUpstreamStatus(name: string, ip: string, port: number, healthy: boolean): void {
    this.#upstreamStatus.set({ name, ip, port: String(port) }, healthy ? 1 : 0);
    this.#version++;
  }

  /** Every health-checked node as of now: nodes of deleted upstreams disappear. */
  replaceUpstreamStatus(nodes: readonly UpstreamNodeStatus[]): void {
    this.#upstreamStatus.reset();
    for (const node of nodes)
      this.#upstreamStatus.set({ name: node.name, ip: node.ip, port: String(node.port) }, node.healthy ? 1 : 0);
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
   * bandwidth. A label set that did not change since the last rendering has
   * its lines copied from that rendering's arena, so a scrape formats only the
   * routes that saw traffic in between, and allocates nothing per route.
   */
  #writeRouteFamilies(arena: ByteArena): void {
    const prefix = this.prefix;
    // The last rendering's text, unless it is being written over now.
    const previous = this.#lastArena === arena ? undefined : this.#lastArena;
    const writeFamily = (family: number, header: string, lines: (series: MergedSeries) => string): void => {
      arena.appendText(header);
      for (const series of this.#series.values()) {
        const start = arena.length;
        const { spans } = series;
        if (series.rendered && previous !== undefined)
          arena.append(previous.view(spans[2 * family], spans[2 * family + 1]));
        else arena.appendText(lines(series));
        spans[2 * family] = start;
        spans[2 * family + 1] = arena.length;
      }
    };

    writeFamily(
      0,
      `# HELP ${prefix}http_status HTTP status codes per service in APISIX\n# TYPE ${prefix}http_status counter\n`,
      (series) => {
        let text = '';
        for (const [code, count] of series.status) {
          text += `${prefix}http_status{code="${code}",${series.statusLabels}} ${count}\n`;
        }
        return text;
      },
    );
    const name = `${prefix}http_latency`;
    writeFamily(
      1,
      `# HELP ${name} HTTP request latency in milliseconds per service in APISIX\n# TYPE ${name} histogram\n`,
      (series) => this.#latencyLines(name, series),
    );
    writeFamily(
      2,
      `# HELP ${prefix}bandwidth Total bandwidth in bytes consumed per service in APISIX\n` +
        `# TYPE ${prefix}bandwidth counter\n`,
      (series) =>
        `${prefix}bandwidth{type="egress",${series.commonLabels}} ${series.egress}\n` +
        `${prefix}bandwidth{type="ingress",${series.commonLabels}} ${series.ingress}\n`,
    );
    for (const series of this.#series.values()) series.rendered = true;
    this.#lastArena = arena;
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

  /** Write the whole exposition into `arena`, from its start; returns its length in bytes. */
  async renderInto(arena: ByteArena): Promise<number> {
    const gauges = await this.registry.metrics();
    arena.reset();
    try {
      this.#writeRouteFamilies(arena);
    } catch (error) {
      // Spans may point into this unfinished arena now: the next rendering writes every label set afresh.
      this.#lastArena = undefined;
      throw error;
    }
    arena.appendText('\n' + gauges);
    return arena.length;
  }
}

/** The exposition text of everything merged so far. */
export async function renderMetricsBuffer(aggregator: MetricsAggregator): Promise<Buffer> {
  const arena = new ByteArena();
  await aggregator.renderInto(arena);
  return arena.view();
}

/** renderMetricsBuffer() as text. */
export async function renderMetrics(aggregator: MetricsAggregator): Promise<string> {
  return (await renderMetricsBuffer(aggregator)).toString();
}

export interface MetricsServerOptions {
  host?: string;
  port?: number;
  path?: string;
  /**
   * A scrape within this long of the last rendering gets that rendering
   * (`plugin_attr.prometheus.refresh_interval`); default 15 s, as APISIX.
   */
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
 * One rendering, kept for the scrapes that follow within maxAgeMs; gzipped
 * once, when a scraper first asks. Its text lives in an arena that the next
 * rendering but one writes over, so it is counted while read (`readers`).
 */
interface Rendering {
  readonly arena: ByteArena;
  /** When its counts were taken (Date.now()). */
  readonly at: number;
  /** Which rendering of this listener it is (1, 2, ...), in its ETag. */
  readonly serial: number;
  readonly version: number;
  /** Scrapes writing this text, and the gzip pass while it runs. */
  readers: number;
  gzipped: Promise<Buffer[]> | undefined;
}

function acceptsGzip(request: IncomingMessage): boolean {
  const accept = request.headers['accept-encoding'];
  return typeof accept === 'string' && /\bgzip\b/i.test(accept);
}

/** The text in pieces of CHUNK_BYTES (views, not copies), one write each. */
function textChunks(text: Rendering): Buffer[] {
  const chunks: Buffer[] = [];
  for (let start = 0; start < text.arena.length; start += CHUNK_BYTES) {
    chunks.push(text.arena.view(start, start + CHUNK_BYTES));
  }
  return chunks;
}

/**
 * Gzip (level 1: 60 MB of exposition shrinks about 28x either way) piece by
 * piece on libuv's threads, so neither a 60 MB input copy nor a long
 * synchronous call in the exporter's event loop.
 */
function gzipChunks(chunks: readonly Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const gzip = createGzip({ level: 1, chunkSize: CHUNK_BYTES });
    const out: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => out.push(chunk));
    gzip.once('end', () => resolve(out));
    gzip.once('error', reject);
    for (const chunk of chunks) gzip.write(chunk);
    gzip.end();
  });
}

/** Write the chunks one by one, waiting for the socket to drain between them (no 40 MB copy in the send queue). */
async function writeChunks(response: ServerResponse, chunks: readonly Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    if (response.destroyed) return;
    if (!response.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          response.off('drain', done);
          response.off('close', done);
          resolve();
        };
        response.on('drain', done);
        response.on('close', done);
      });
    }
  }
  response.end();
}

/**
 * The metrics listener (127.0.0.1:9091/apisix/prometheus/metrics by default),
 * run by the agent's metrics exporter. The text is rendered at most once per
 * `maxAgeMs` and only when something changed; concurrent scrapes share one
 * rendering. Like APISIX since its metrics cache (refresh_interval), a scrape
 * may get counts up to that old, and its `Age` header says how old; unlike
 * APISIX, nothing is rendered while nobody scrapes. Two arenas take turns
 * holding the text (a third only while a slow scraper still reads an old one),
 * so rendering reuses memory instead of taking 60 MB afresh each time (see
 * ./byte-arena.ts). The body is streamed in chunks; gzip only when the scraper
 * asks.
 */
export async function startMetricsServer(
  aggregator: MetricsAggregator,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const path = options.path ?? DEFAULT_METRICS_PATH;
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_PROMETHEUS_REFRESH_INTERVAL * 1000;
  let cached: Rendering | undefined;
  let rendering: Promise<Rendering> | undefined;
  /** An arena no rendering uses any more, for the next one. */
  let spare: ByteArena | undefined;
  let renders = 0;
  /** In the ETag, so a restarted exporter's first renderings are not taken for its predecessor's. */
  const started = Date.now().toString(36);

  const release = (text: Rendering): void => {
    text.readers--;
    recycle(text);
  };
  const recycle = (text: Rendering): void => {
    if (text !== cached && text.readers === 0 && spare === undefined) spare = text.arena;
  };
  const render = async (): Promise<Rendering> => {
    try {
      const version = aggregator.version;
      // The counts are as of now; the rendering's age is counted from here.
      const at = Date.now();
      const arena = spare ?? new ByteArena(cached?.arena.length);
      spare = undefined;
      await aggregator.renderInto(arena);
      renders++;
      const previous = cached;
      cached = { arena, at, serial: renders, version, readers: 0, gzipped: undefined };
      if (previous !== undefined) recycle(previous);
      return cached;
    } finally {
      rendering = undefined;
    }
  };
  /** The current rendering, counted as read until release(). */
  const acquire = (): Promise<Rendering> => {
    if (cached !== undefined && (cached.version === aggregator.version || Date.now() - cached.at < maxAgeMs)) {
      cached.readers++;
      return Promise.resolve(cached);
    }
    rendering ??= render();
    // Runs right after the rendering settles, before any other scrape can replace it.
    return rendering.then((text) => {
      text.readers++;
      return text;
    });
  };
  const gzipped = (text: Rendering): Promise<Buffer[]> => {
    text.gzipped ??= gzipChunks(textChunks(text)).catch((error: unknown) => {
      text.gzipped = undefined;
      throw error;
    });
    return text.gzipped;
  };

  const serve = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const text = await acquire();
    try {
      const headers: Record<string, string | number> = {
        'content-type': Registry.PROMETHEUS_CONTENT_TYPE,
        // How old the counts are, in whole seconds (RFC 9111 §5.1), and which rendering this is: weak, as the
        // gzipped and plain bodies of one rendering share it.
        age: Math.floor((Date.now() - text.at) / 1000),
        etag: `W/"${started}-${text.serial}"`,
      };
      let chunks = textChunks(text);
      if (acceptsGzip(request)) {
        chunks = await gzipped(text);
        headers['content-encoding'] = 'gzip';
      }
      headers['content-length'] = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      response.writeHead(200, headers);
      if (request.method === 'HEAD') response.end();
      else await writeChunks(response, chunks);
    } finally {
      release(text);
    }
  };

  const server = createServer((request, response) => {
    const url = request.url ?? '/';
    const pathOnly = url.indexOf('?') < 0 ? url : url.slice(0, url.indexOf('?'));
    if (pathOnly !== path || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end('{"error_msg":"404 Route Not Found"}\n');
      return;
    }
    serve(request, response).catch((error: unknown) => {
      if (response.headersSent) return void response.destroy();
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`failed to render metrics: ${(error as Error).message}\n`);
    });
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
