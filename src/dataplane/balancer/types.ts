// The shapes shared by the balancer entry point and the algorithms behind it.

import type { VarLookup } from '../../core/expr';

export interface BalancerNode {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly priority: number;
  /** `host:port`, or `[v6]:port` for an IPv6 host. */
  readonly address: string;
}

export interface BalanceContext {
  readonly remoteAddr: string;
  vars: VarLookup;
  consumerName?: string;
}

/** Whether a node may receive traffic; filled by health checks. */
export interface HealthView {
  isHealthy(node: BalancerNode): boolean;
}

export interface Balancer {
  readonly nodes: readonly BalancerNode[];
  /** The node for this request, skipping `tried` ones; undefined when no node can be used. */
  pick(ctx: BalanceContext, tried?: ReadonlySet<BalancerNode>): BalancerNode | undefined;
  /** A request starts on `node`. */
  begin?(node: BalancerNode): void;
  /** A request on `node` ends. */
  end?(node: BalancerNode, latencyMs: number, failed: boolean): void;
}

/**
 * One balancing algorithm over every node of an upstream. Nodes are known by
 * their slot (index in the upstream's node list); a group is the slots of one
 * priority level. `pick` returns a slot of `group` that `usable` accepts, or -1.
 */
export interface SlotPicker {
  pick(group: number, ctx: BalanceContext, usable: SlotFilter | undefined): number;
  begin?(slot: number): void;
  end?(slot: number, latencyMs: number, failed: boolean): void;
}

/** Says whether a slot may be picked now (not tried, healthy). Weight-0 slots are excluded before it is asked. */
export interface SlotFilter {
  accepts(slot: number): boolean;
}
