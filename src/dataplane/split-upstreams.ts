// Upstreams a plugin sends a request to instead of the route's (traffic-split):
// an upstream id or an inline upstream from the plugin's configuration,
// compiled once per config version. One the route table already compiled
// (the same upstream used by a route) is shared with it, pool included;
// otherwise a compiled copy is kept here, and handed on to the next version
// while its configuration is unchanged.

import type { Upstream } from '../schema/types';
import { compileUpstream, upstreamKey, type CompiledUpstream, type RouteTable } from './route-table';

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
        compiled = compileUpstream(upstream, key, null); // a split target's health is not tracked separately
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
