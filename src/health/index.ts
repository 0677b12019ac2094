// Health checks, APISIX's `upstream.checks`:
//
// - Active checks run in the agent (startActiveHealthChecks): probes per node,
//   results counted into the shared dictionary (key scheme in keys.ts, counting
//   rules in state.ts).
// - Passive checks run in the workers: the proxy reports each attempt's status,
//   refused connect or timeout to the upstream's PassiveReporter
//   (upstream-health.ts), counted into the same keys. As in APISIX, passive
//   checks need active ones ("passive health check needs active to recover"):
//   an unhealthy node gets no traffic, so only active checks bring it back, and
//   an upstream with only `checks.passive` is not checked at all.
// - Workers copy the state into each compiled upstream's HealthView every
//   HEALTH_REFRESH_MS; the balancer skips unhealthy nodes and so falls over to
//   the next priority group when a whole group is down. When every node is
//   down, all are used (APISIX: "all upstream nodes is unhealthy, use default").
// - readHealthReport builds the control endpoint's view in any process.

import type { Logger } from '../core/log';
import type { SharedDict } from '../native/shdict';
import type { ConfigSnapshot } from '../store/types';
import { UpstreamChecker, upstreamIdentity } from './active';
import { checkedUpstreams, type CheckedUpstream } from './keys';
import { reportOf, type HealthReport } from './report';

export type { HealthReport, NodeHealth } from './report';
export { readHealthReport } from './report';
export { HEALTH_REFRESH_MS, UpstreamHealth, type PassiveReporter } from './upstream-health';
export { routeUpstreamId, serviceUpstreamId } from './keys';

export interface HealthChecker {
  /** Check what `snapshot` says: new upstreams start, changed ones restart, removed ones stop. */
  update(snapshot: ConfigSnapshot): void;
  /** Stop every check; resolves when no probe is in flight. */
  stop(): Promise<void>;
  /** The checked upstreams of the last snapshot with their nodes' state. */
  status(): HealthReport;
}

class ActiveHealthChecks implements HealthChecker {
  readonly #dict: SharedDict;
  readonly #log: Logger | undefined;
  #checkers = new Map<string, UpstreamChecker>();
  #upstreams: CheckedUpstream[] = [];
  /** Checkers replaced or removed whose last probes may still be finishing. */
  readonly #stopping = new Set<Promise<void>>();
  #stopped = false;

  constructor(dict: SharedDict, log: Logger | undefined) {
    this.#dict = dict;
    this.#log = log;
  }

  update(snapshot: ConfigSnapshot): void {
    if (this.#stopped) return;
    const upstreams = checkedUpstreams(snapshot);
    const next = new Map<string, UpstreamChecker>();
    const wanted = new Map(upstreams.map((checked) => [checked.id, checked]));
    for (const [id, checker] of this.#checkers) {
      const replacement = wanted.get(id);
      if (replacement !== undefined && upstreamIdentity(replacement.upstream) === checker.identity) {
        next.set(id, checker);
        continue;
      }
      this.#retire(checker);
      checker.forgetNodes(replacement);
    }
    for (const checked of upstreams) {
      if (next.has(checked.id)) continue;
      const checker = new UpstreamChecker(this.#dict, checked, this.#log);
      next.set(checked.id, checker);
      checker.start();
    }
    this.#checkers = next;
    this.#upstreams = upstreams;
  }

  #retire(checker: UpstreamChecker): void {
    const stopping = checker.stop().finally(() => this.#stopping.delete(stopping));
    this.#stopping.add(stopping);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const checker of this.#checkers.values()) this.#retire(checker);
    this.#checkers.clear();
    await Promise.all(this.#stopping);
  }

  status(): HealthReport {
    return reportOf(this.#dict, this.#upstreams);
  }
}

/** Start the agent's active checks; feed it every config with update(). */
export function startActiveHealthChecks(options: { dict: SharedDict; log?: Logger }): HealthChecker {
  return new ActiveHealthChecks(options.dict, options.log);
}
