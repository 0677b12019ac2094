// Where health state lives in the shared dictionary, and which upstreams of a
// snapshot have health checks.
//
// Every key is `health/<upstream id>/<node>/<field>`:
//   upstream id  the upstream's id; `route:<id>` or `service:<id>` for an
//                upstream written inline in a route or a service
//   node         `host:port` (`[v6]:port` for an IPv6 host), the node's own
//                port even when checks.active.port sends checks elsewhere
//   field        state      1 healthy, 0 unhealthy; absent means healthy
//                           (nodes start healthy, as in APISIX)
//                successes  consecutive successes, counted while unhealthy
//                failures   consecutive failures, counted while healthy, in
//                           one number: http + tcp * 2^16 + timeouts * 2^32
//                checked    ms since the epoch of the last active check
// The active checker (agent) and the passive reporters (workers) write the
// same keys; counters move with atomic incr. See state.ts for the rules.

import { normalizeNodes, type BalancerNode } from '../dataplane/balancer';
import type { Upstream } from '../schema/types';
import type { ConfigSnapshot } from '../store/types';

export class NodeKeys {
  readonly state: string;
  readonly successes: string;
  readonly failures: string;
  readonly checked: string;

  constructor(upstreamId: string, address: string) {
    const prefix = `health/${upstreamId}/${address}/`;
    this.state = prefix + 'state';
    this.successes = prefix + 'successes';
    this.failures = prefix + 'failures';
    this.checked = prefix + 'checked';
  }
}

export function routeUpstreamId(routeId: string): string {
  return `route:${routeId}`;
}

export function serviceUpstreamId(serviceId: string): string {
  return `service:${serviceId}`;
}

/** An upstream with health checks, under the id its health keys use. */
export interface CheckedUpstream {
  readonly id: string;
  readonly upstream: Upstream;
  readonly nodes: readonly BalancerNode[];
}

/**
 * The upstreams of `snapshot` that have `checks.active` (APISIX requires it
 * whenever `checks` is set): upstream objects, then inline route and service
 * upstreams. An upstream is listed whether or not a route uses it.
 */
export function checkedUpstreams(snapshot: ConfigSnapshot): CheckedUpstream[] {
  const found: CheckedUpstream[] = [];
  const add = (id: string, upstream: Upstream | undefined): void => {
    if (upstream?.checks?.active === undefined) return;
    found.push({ id, upstream, nodes: normalizeNodes(upstream.nodes) });
  };
  for (const upstream of snapshot.upstreams) if (upstream.id !== undefined) add(upstream.id, upstream);
  for (const route of snapshot.routes) if (route.id !== undefined) add(routeUpstreamId(route.id), route.upstream);
  for (const service of snapshot.services) {
    if (service.id !== undefined) add(serviceUpstreamId(service.id), service.upstream);
  }
  return found;
}
