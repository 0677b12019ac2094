// The health of every checked upstream's nodes as the control endpoint shows
// it, read from the shared dictionary, so any process holding the dictionary
// and the config can answer.

import type { SharedDict } from '../native/shdict';
import type { ConfigSnapshot } from '../store/types';
import { checkedUpstreams, NodeKeys, type CheckedUpstream } from './keys';
import { isHealthyState, unpackFailures } from './state';

export interface NodeHealth {
  upstreamId: string;
  /** host:port */
  node: string;
  healthy: boolean;
  /** Consecutive successes counted since the node became unhealthy. */
  successes: number;
  /** Consecutive failures (all kinds together) counted since the node was last healthy with no failure. */
  failures: number;
  /** ms since the epoch of the last active check. */
  lastCheck?: number;
}

export interface HealthReport {
  upstreams: Array<{ id: string; name?: string; nodes: NodeHealth[] }>;
}

function numberAt(dict: SharedDict, key: string): number {
  const value = dict.get(key);
  return typeof value === 'number' ? value : 0;
}

export function readNodeHealth(dict: SharedDict, upstreamId: string, address: string): NodeHealth {
  const keys = new NodeKeys(upstreamId, address);
  const failures = unpackFailures(numberAt(dict, keys.failures));
  const health: NodeHealth = {
    upstreamId,
    node: address,
    healthy: isHealthyState(dict.get(keys.state)),
    successes: numberAt(dict, keys.successes),
    failures: failures.http + failures.tcp + failures.timeouts,
  };
  const checked = dict.get(keys.checked);
  if (typeof checked === 'number') health.lastCheck = checked;
  return health;
}

export function reportOf(dict: SharedDict, upstreams: readonly CheckedUpstream[]): HealthReport {
  return {
    upstreams: upstreams.map(({ id, upstream, nodes }) => {
      const entry: HealthReport['upstreams'][number] = {
        id,
        nodes: nodes.map((node) => readNodeHealth(dict, id, node.address)),
      };
      if (upstream.name !== undefined) entry.name = upstream.name;
      return entry;
    }),
  };
}

/** Every upstream with health checks in `snapshot`, with its nodes' state. */
export function readHealthReport(dict: SharedDict, snapshot: ConfigSnapshot): HealthReport {
  return reportOf(dict, checkedUpstreams(snapshot));
}
