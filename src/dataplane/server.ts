// The data plane: listening sockets, the current route table, one coarse timer
// for every deadline, and graceful shutdown. Per-connection work lives in
// connection.ts.

import * as net from 'node:net';
import { logger } from '../core/log';
import { HEALTH_REFRESH_MS } from '../health/upstream-health';
import type { NativeBackend } from '../native/backend';
import { OUT_SIZE } from '../native/layout';
import type { SharedDict } from '../native/shdict';
import type { PluginRuntime } from '../plugins/chain';
import { ConsumerIndex } from '../plugins/consumers';
import { OffloadPool, type OffloadPoolOptions } from '../plugins/offload';
import type { Upstream } from '../schema/types';
import type { ConfigSnapshot } from '../store/types';
import { ClientConnection, clientReadBuffer, type DataPlaneLimits, type ProxyContext } from './connection';
import { compileRouteTable, retireRouteTable, RouteTable, type CompiledUpstream } from './route-table';
import { SplitUpstreams } from './split-upstreams';

export type { DataPlaneLimits } from './connection';

export interface DataPlaneOptions {
  listen: Array<{ host: string; port: number }>;
  limits?: Partial<DataPlaneLimits>;
  /** Health state (src/health): with it, upstreams with checks skip unhealthy nodes and report passive results. */
  sharedDict?: SharedDict;
  /** The plugin registry routes' chains are compiled against; without it no plugin runs. */
  plugins?: PluginRuntime;
  /** Shared dictionaries plugins reach through ctx.dict(name) (the worker's open ones). */
  dicts?: ReadonlyMap<string, SharedDict>;
  /** The worker-thread pool for ctx.offload(); its threads start on the first task. */
  offload?: OffloadPoolOptions;
  /**
   * How long a compiled plugin configuration outlives the last route table
   * using it before its plugin's release() runs, so requests that started on an
   * older table finish with it. Default: the retired table's longest read
   * timeout, at least RELEASE_GRACE_MS.
   */
  releaseGraceMs?: number;
}

/** The least time a compiled plugin configuration outlives its last route table (APISIX's default read timeout). */
export const RELEASE_GRACE_MS = 60_000;

export const DEFAULT_LIMITS: Readonly<DataPlaneLimits> = {
  maxHeadBytes: 32768,
  maxBodyBytes: 0,
  headTimeoutMs: 60000,
  idleTimeoutMs: 60000,
};

const log = logger('dataplane');

/** Whether accepted sockets read through the shared buffer; tests assert it so a Node change that breaks adoption shows. */
export let adoptsAcceptedSockets = true;

/**
 * net.Server has no `onread` option for accepted sockets, but net.Socket's
 * constructor takes one together with a handle (the way the server itself
 * builds its sockets). So the paused accepted socket gives up its handle to a
 * new socket reading into the shared client buffer: per read this saves a
 * 64 KiB allocation and the Readable machinery, about a fifth of the proxy's
 * CPU per request in `npm run bench:quick`. Returns null (use the accepted
 * socket as it is) if the handle is not where Node keeps it.
 */
function adoptWithSharedReads(accepted: net.Socket, onRead: (length: number) => boolean): net.Socket | null {
  const holder = accepted as unknown as { _handle: { readStart?: unknown } | null };
  const handle = holder._handle;
  if (handle === null || typeof handle.readStart !== 'function') {
    adoptsAcceptedSockets = false;
    return null;
  }
  holder._handle = null;
  accepted.destroy(); // frees the server's connection count; the handle lives on in the new socket
  return new net.Socket({
    handle,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    onread: { buffer: clientReadBuffer, callback: onRead },
  } as unknown as net.SocketConstructorOpts);
}

/** Tick of the coarse timer: deadlines fire up to this late (undici uses the same idea at ~500 ms). */
function tickInterval(limits: DataPlaneLimits): number {
  return Math.max(25, Math.min(500, Math.floor(limits.headTimeoutMs / 4), Math.floor(limits.idleTimeoutMs / 4)));
}

class Context implements ProxyContext {
  readonly backend: NativeBackend;
  readonly limits: DataPlaneLimits;
  readonly responseOut = new Int32Array(OUT_SIZE);
  readonly connections = new Set<ClientConnection>();
  table: RouteTable = RouteTable.empty();
  consumers: ConsumerIndex = ConsumerIndex.empty();
  readonly splitUpstreams = new SplitUpstreams(this.table);
  readonly offload: OffloadPool;
  private readonly dicts: ReadonlyMap<string, SharedDict>;
  now = Date.now();
  closing = false;
  onIdle: (() => void) | null = null;

  constructor(backend: NativeBackend, limits: DataPlaneLimits, options: DataPlaneOptions) {
    this.backend = backend;
    this.limits = limits;
    this.offload = new OffloadPool(options.offload);
    this.dicts = options.dicts ?? new Map();
  }

  dict(name: string): SharedDict {
    const dict = this.dicts.get(name);
    if (dict === undefined) throw new Error(`no such shared dictionary: ${name}`);
    return dict;
  }

  resolveUpstream(upstream: Upstream | string): CompiledUpstream | null {
    return this.splitUpstreams.resolve(upstream);
  }

  connectionClosed(conn: ClientConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) this.onIdle?.();
  }
}

/** The longest upstream read timeout of `table`'s routes (0 for none). */
function longestReadTimeoutMs(table: RouteTable): number {
  let longest = 0;
  for (const route of table.routes) longest = Math.max(longest, route.readTimeoutMs);
  return longest;
}

export class DataPlane {
  private readonly ctx: Context;
  private readonly options: DataPlaneOptions;
  private readonly servers: net.Server[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private readonly tickMs: number;
  /** Copies node health from the shared dictionary; its own timer so the connection ticker keeps its pace. */
  private healthTimer: NodeJS.Timeout | null = null;
  /** Runs the next due release of compiled plugin configurations. */
  private releaseTimer: NodeJS.Timeout | null = null;

  constructor(backend: NativeBackend, options: DataPlaneOptions) {
    this.options = options;
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.ctx = new Context(backend, limits, options);
    this.tickMs = tickInterval(limits);
  }

  get configVersion(): number {
    return this.ctx.table.version;
  }

  /** The route table in use (tests look at its compiled routes). */
  get routeTable(): RouteTable {
    return this.ctx.table;
  }

  /** Compile `snapshot` and swap it in; on failure the old table stays and the error is thrown. */
  applyConfig(snapshot: ConfigSnapshot): void {
    const ctx = this.ctx;
    const old = ctx.table;
    let table: RouteTable;
    try {
      table = compileRouteTable(ctx.backend, snapshot, old, this.options.sharedDict, this.options.plugins);
    } catch (err) {
      // Plugin configurations the failed compile opened are held by no table.
      this.releaseUnusedConfs();
      throw err;
    }
    ctx.table = table;
    // A new index only when the consumers changed (stores hand unchanged lists over as the same array).
    if (ctx.consumers.consumers !== snapshot.consumers) ctx.consumers = new ConsumerIndex(snapshot.consumers);
    ctx.splitUpstreams.update(table, snapshot.upstreams);
    // Matching is synchronous, so no request still holds the old router handle.
    retireRouteTable(this.ctx.backend, old, table);
    const confs = table.chainContext?.shared.compiled;
    if (confs !== undefined && confs.onTracked === undefined) confs.onTracked = () => this.releaseUnusedConfsLater();
    this.releaseUnusedConfs(old);
  }

  /** Sweep after the grace period unless a sweep is timed already (a chain compiled while requests run). */
  private releaseUnusedConfsLater(): void {
    if (this.releaseTimer !== null || this.ctx.closing) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null;
      this.releaseUnusedConfs();
    }, this.releaseGraceFor(this.ctx.table));
    this.releaseTimer.unref();
  }

  /**
   * How long requests that started on `table` may still run: releaseGraceMs,
   * or the table's longest read timeout, at least RELEASE_GRACE_MS.
   */
  private releaseGraceFor(table: RouteTable): number {
    return this.options.releaseGraceMs ?? Math.max(RELEASE_GRACE_MS, longestReadTimeoutMs(table));
  }

  /**
   * Release the compiled plugin configurations no chain of the current table
   * holds, once they have been unused for the grace period (requests that
   * started on an older table may still run them), and time the next release.
   * `retired`: the table just swapped out, whose routes set the grace period
   * (else the current table's).
   */
  private releaseUnusedConfs(retired?: RouteTable): void {
    const table = this.ctx.table;
    const context = table.chainContext;
    const confs = context?.shared.compiled;
    if (context === undefined || confs === undefined || confs.unreleased === 0) return;
    const chains = table.routes.map((route) => route.chain);
    if (table.unmatched !== null) chains.push(table.unmatched.chain);
    const now = Date.now();
    const graceMs = this.releaseGraceFor(retired ?? table);
    const due = confs.releaseUnused(context, chains, new Set(this.ctx.consumers.consumers), now, graceMs);
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    if (due === undefined || this.ctx.closing) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null;
      this.releaseUnusedConfs();
    }, due - now);
    this.releaseTimer.unref();
  }

  async listen(): Promise<Array<{ address: string; port: number }>> {
    const bound: Array<{ address: string; port: number }> = [];
    for (const { host, port } of this.options.listen) {
      // allowHalfOpen: a client that shuts down its sending side still gets its answer.
      // pauseOnConnect: nothing is read before accept() has moved the handle to a socket reading with onread.
      const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) =>
        this.accept(socket),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => log.error('listener error', { message: err.message }));
      this.servers.push(server);
      const address = server.address() as net.AddressInfo;
      bound.push({ address: address.address, port: address.port });
    }
    if (this.ticker === null) {
      this.ticker = setInterval(() => this.tick(), this.tickMs);
      this.ticker.unref();
    }
    if (this.healthTimer === null && this.options.sharedDict !== undefined) {
      this.healthTimer = setInterval(() => this.refreshHealth(), HEALTH_REFRESH_MS);
      this.healthTimer.unref();
    }
    return bound;
  }

  private accept(accepted: net.Socket): void {
    if (this.ctx.closing) {
      accepted.destroy();
      return;
    }
    this.ctx.now = Date.now();
    let conn: ClientConnection | null = null;
    const socket = adoptWithSharedReads(accepted, (length) => conn!.onRead(length));
    conn = socket === null ? new ClientConnection(accepted, this.ctx) : new ClientConnection(socket, this.ctx, true);
    if (socket === null) accepted.resume();
    this.ctx.connections.add(conn);
  }

  private tick(): void {
    const now = Date.now();
    this.ctx.now = now;
    for (const conn of this.ctx.connections) conn.tick(now);
    for (const upstream of this.ctx.table.upstreams.values()) upstream.pool.sweep(now);
    this.ctx.splitUpstreams.sweep(now);
  }

  private refreshHealth(): void {
    for (const upstream of this.ctx.table.upstreams.values()) upstream.health?.refresh();
  }

  /**
   * Stop accepting, close idle keep-alive connections, let in-flight requests
   * finish (each connection closes after its current answer), and destroy what
   * is left after `drainTimeoutMs`.
   */
  async close(drainTimeoutMs = 5000): Promise<void> {
    const ctx = this.ctx;
    ctx.closing = true;
    const listenersClosed = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    this.servers.length = 0;
    for (const conn of ctx.connections) conn.closeIfIdle();
    if (ctx.connections.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const conn of ctx.connections) conn.destroy();
          resolve();
        }, drainTimeoutMs);
        ctx.onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      ctx.onIdle = null;
    }
    await Promise.all(listenersClosed);
    if (this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
    if (this.healthTimer !== null) {
      clearInterval(this.healthTimer);
      this.healthTimer = null;
    }
    for (const upstream of ctx.table.upstreams.values()) upstream.pool.closeIdle();
    ctx.splitUpstreams.closeIdle();
    if (this.releaseTimer !== null) {
      clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
    }
    ctx.table.chainContext?.shared.compiled.releaseAll();
    await ctx.offload.close();
  }
}
