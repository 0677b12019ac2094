// Upstreams a plugin sends a request to instead of the route's (traffic-split):
// an upstream id or an inline upstream from the plugin's configuration,
// compiled once per config version. One the route table already compiled
// (the same upstream used by a route) is shared with it, pool included;
// otherwise a compiled copy is kept here, and handed on to the next version
// while its configuration is unchanged.

import type { Upstream } from '../schema/types';
import { createBalancer, normalizeNodes } from './balancer';
import { PassHost, type CompiledUpstream, type RouteTable } from './route-table';
import { UpstreamPool } from './upstream-pool';

// The route table's defaults (route-table.ts), which does not export its compiler.
const DEFAULT_POOL_SIZE = 320;
const DEFAULT_POOL_IDLE_SECONDS = 60;
const DEFAULT_POOL_REQUESTS = 1000;

/** The route table's identity of an upstream across versions: its JSON without timestamps. */
function upstreamKey(upstream: Upstream): string {
  const { create_time: _created, update_time: _updated, ...rest } = upstream;
  return JSON.stringify(rest);
}

/** Without active health checks: a split target's health is not tracked separately. */
function compileSplitUpstream(upstream: Upstream, key: string): CompiledUpstream {
  const nodes = normalizeNodes(upstream.nodes);
  const pool = upstream.keepalive_pool;
  return {
    key,
    upstream,
    balancer: createBalancer(upstream, nodes),
    pool: new UpstreamPool({
      size: pool?.size ?? DEFAULT_POOL_SIZE,
      idleTimeoutMs: (pool?.idle_timeout ?? DEFAULT_POOL_IDLE_SECONDS) * 1000,
      maxRequests: pool?.requests ?? DEFAULT_POOL_REQUESTS,
    }),
    retries: upstream.retries ?? Math.max(0, nodes.length - 1),
    retryTimeoutMs: (upstream.retry_timeout ?? 0) * 1000,
    passHost:
      upstream.pass_host === 'node'
        ? PassHost.Node
        : upstream.pass_host === 'rewrite'
          ? PassHost.Rewrite
          : PassHost.Pass,
    upstreamHost: upstream.upstream_host ?? '',
    health: null,
    passive: null,
  };
}

export class SplitUpstreams {
  private table: RouteTable;
  private byId: ReadonlyMap<string, Upstream> = new Map();
  /**
   * Every upstream compiled here, by key, across versions: plugin
   * configurations are not indexed, so which ones a new version still uses is
   * not known; an unused one only keeps idle connections until `sweep` closes
   * them after their idle timeout.
   */
  private readonly compiled = new Map<string, CompiledUpstream>();
  private byObject = new WeakMap<Upstream, CompiledUpstream>();

  constructor(table: RouteTable) {
    this.table = table;
  }

  /** A new config version: upstream ids resolve against `upstreams`, shared ones come from `table`. */
  update(table: RouteTable, upstreams: readonly Upstream[]): void {
    this.table = table;
    const byId = new Map<string, Upstream>();
    for (const upstream of upstreams) if (upstream.id !== undefined) byId.set(String(upstream.id), upstream);
    this.byId = byId;
    this.byObject = new WeakMap();
  }

  /** The compiled upstream for an id or an inline upstream; null when the id is unknown. */
  resolve(target: Upstream | string): CompiledUpstream | null {
    const upstream = typeof target === 'string' ? this.byId.get(target) : target;
    if (upstream === undefined) return null;
    let compiled = this.byObject.get(upstream);
    if (compiled !== undefined) return compiled;
    const key = upstreamKey(upstream);
    compiled = this.table.upstreams.get(key);
    if (compiled === undefined) {
      compiled = this.compiled.get(key);
      if (compiled === undefined) {
        compiled = compileSplitUpstream(upstream, key);
        this.compiled.set(key, compiled);
      }
    }
    this.byObject.set(upstream, compiled);
    return compiled;
  }

  sweep(now: number): void {
    for (const upstream of this.compiled.values()) upstream.pool.sweep(now);
  }

  closeIdle(): void {
    for (const upstream of this.compiled.values()) upstream.pool.closeIdle();
  }
}
