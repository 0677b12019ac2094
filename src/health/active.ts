// Active health checks, run by the agent: per checked upstream, every node is
// probed on its own schedule (healthy.interval while healthy, unhealthy.interval
// while not), at most `concurrency` probes of one upstream at a time. A node's
// next check is scheduled only when its current one has finished, and every
// probe ends by its timeout, so a hanging node never piles up checks.

import type { Logger } from '../core/log';
import type { BalancerNode } from '../dataplane/balancer';
import type { SharedDict } from '../native/shdict';
import type { Upstream } from '../schema/types';
import { activeSettings, type ActiveSettings } from './config';
import { NodeKeys, type CheckedUpstream } from './keys';
import { probe } from './probe';
import { isHealthyState, recordOutcome } from './state';

interface Target {
  readonly node: BalancerNode;
  readonly keys: NodeKeys;
  timer: NodeJS.Timeout | null;
  /** The state this checker last saw, to log changes. */
  healthy: boolean;
}

/** The fields of an upstream that change what is checked (timestamps do not). */
export function upstreamIdentity(upstream: Upstream): string {
  const { create_time: _created, update_time: _updated, ...rest } = upstream;
  return JSON.stringify(rest);
}

export class UpstreamChecker {
  readonly id: string;
  readonly identity: string;
  readonly checked: CheckedUpstream;
  readonly #dict: SharedDict;
  readonly #log: Logger | undefined;
  readonly #settings: ActiveSettings;
  readonly #targets: Target[];
  readonly #waiting: Target[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  constructor(dict: SharedDict, checked: CheckedUpstream, log: Logger | undefined) {
    this.id = checked.id;
    this.identity = upstreamIdentity(checked.upstream);
    this.checked = checked;
    this.#dict = dict;
    this.#log = log;
    this.#settings = activeSettings(checked.upstream.checks!.active!);
    this.#targets = checked.nodes.map((node) => {
      const keys = new NodeKeys(checked.id, node.address);
      return { node, keys, timer: null, healthy: isHealthyState(dict.get(keys.state)) };
    });
  }

  /** First checks at once, then on each node's interval. */
  start(): void {
    for (const target of this.#targets) this.#enqueue(target);
  }

  #schedule(target: Target): void {
    if (this.#stopped) return;
    const healthy = isHealthyState(this.#dict.get(target.keys.state));
    const delay = healthy ? this.#settings.healthyIntervalMs : this.#settings.unhealthyIntervalMs;
    target.timer = setTimeout(() => {
      target.timer = null;
      this.#enqueue(target);
    }, delay);
    target.timer.unref(); // the agent's other work keeps it alive; a forgotten checker must not
  }

  #enqueue(target: Target): void {
    if (this.#stopped) return;
    if (this.#running.size < this.#settings.concurrency) this.#run(target);
    else this.#waiting.push(target);
  }

  #run(target: Target): void {
    const running = this.#check(target).finally(() => {
      this.#running.delete(running);
      const next = this.#waiting.shift();
      if (next !== undefined) this.#enqueue(next);
    });
    this.#running.add(running);
  }

  async #check(target: Target): Promise<void> {
    const result = await probe(this.#settings, target.node, this.#abort.signal);
    if (this.#stopped) return;
    try {
      let healthy = isHealthyState(this.#dict.get(target.keys.state));
      if (result !== 'ignored') healthy = recordOutcome(this.#dict, target.keys, result, this.#settings.thresholds);
      this.#dict.set(target.keys.checked, Date.now());
      if (healthy !== target.healthy) {
        target.healthy = healthy;
        this.#log?.info(healthy ? 'node is healthy' : 'node is unhealthy', {
          upstream: this.id,
          node: target.node.address,
        });
      }
    } catch (err) {
      this.#log?.error('health check state not written', { upstream: this.id, message: (err as Error).message });
    }
    this.#schedule(target);
  }

  /** Cancel timers and in-flight probes; resolves when no probe is left. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#waiting.length = 0;
    for (const target of this.#targets) {
      if (target.timer !== null) clearTimeout(target.timer);
      target.timer = null;
    }
    await Promise.all(this.#running);
  }

  /** Remove the state of nodes that `next` (this upstream's new config, or none) no longer has. */
  forgetNodes(next: CheckedUpstream | undefined): void {
    const kept = new Set(next?.nodes.map((node) => node.address));
    for (const target of this.#targets) {
      if (kept.has(target.node.address)) continue;
      for (const key of [target.keys.state, target.keys.successes, target.keys.failures, target.keys.checked]) {
        this.#dict.delete(key);
      }
    }
  }
}
