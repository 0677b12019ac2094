// The upstream balancer: normalises an upstream's nodes, splits them into
// priority groups and asks the upstream's algorithm (roundrobin, chash,
// least_conn, ewma) for a node of the highest group that still has a usable
// one. A node is usable when its weight is above 0, it is not in `tried`, and
// the health view (if any) calls it healthy; a lower priority group is used
// only while every higher one has no usable node.

import type { Upstream } from '../../schema/types';
import { createChash } from './chash';
import { createEwma, type EwmaOptions } from './ewma';
import { createLeastConn } from './least-conn';
import { createRoundRobin } from './roundrobin';
import type { BalanceContext, Balancer, BalancerNode, HealthView, SlotFilter, SlotPicker } from './types';

export type { BalanceContext, Balancer, BalancerNode, HealthView } from './types';
export type { EwmaOptions } from './ewma';

const DEFAULT_PORT = 80;

function makeNode(host: string, port: number, weight: number, priority: number): BalancerNode {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { host, port, weight, priority, address };
}

function parsePort(text: string | undefined): number {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return DEFAULT_PORT;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : DEFAULT_PORT;
}

/** Splits `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address or a bare host; a missing or unreadable port is 80. */
function splitAddress(address: string): { host: string; port: number } {
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close > 0) {
      const rest = address.slice(close + 1);
      return { host: address.slice(1, close), port: parsePort(rest.startsWith(':') ? rest.slice(1) : undefined) };
    }
  }
  const colon = address.indexOf(':');
  if (colon < 0) return { host: address, port: DEFAULT_PORT };
  // More than one colon without brackets: an IPv6 address without a port.
  if (address.indexOf(':', colon + 1) >= 0) return { host: address, port: DEFAULT_PORT };
  return { host: address.slice(0, colon), port: parsePort(address.slice(colon + 1)) };
}

function cleanWeight(weight: unknown, fallback: number): number {
  return typeof weight === 'number' && Number.isFinite(weight) && weight >= 0 ? weight : fallback;
}

/**
 * An upstream's nodes as a list, from either the `{"host:port": weight}` map or
 * the node array. A missing port is 80; nodes of weight 0 are kept but never picked.
 */
export function normalizeNodes(nodes: Upstream['nodes']): BalancerNode[] {
  if (!nodes) return [];
  if (Array.isArray(nodes)) {
    return nodes.map((node) => {
      const bracketed = node.host.startsWith('[') && node.host.endsWith(']');
      const host = bracketed ? node.host.slice(1, -1) : node.host;
      const port = typeof node.port === 'number' && node.port > 0 ? node.port : DEFAULT_PORT;
      const priority = typeof node.priority === 'number' && Number.isFinite(node.priority) ? node.priority : 0;
      return makeNode(host, port, cleanWeight(node.weight, 1), priority);
    });
  }
  return Object.entries(nodes).map(([address, weight]) => {
    const { host, port } = splitAddress(address);
    return makeNode(host, port, cleanWeight(weight, 0), 0);
  });
}

/** Slots of usable nodes, highest priority first; each group keeps the nodes' order. Weight-0 nodes are left out. */
function priorityGroups(nodes: readonly BalancerNode[]): Int32Array[] {
  const priorities = [...new Set(nodes.filter((node) => node.weight > 0).map((node) => node.priority))];
  priorities.sort((a, b) => b - a);
  return priorities.map((priority) => {
    const slots: number[] = [];
    nodes.forEach((node, slot) => {
      if (node.weight > 0 && node.priority === priority) slots.push(slot);
    });
    return Int32Array.from(slots);
  });
}

/** The per-pick filter, one per balancer and refilled on each pick so that picking allocates nothing. */
class UsableSlots implements SlotFilter {
  tried: ReadonlySet<BalancerNode> | undefined = undefined;
  health: HealthView | undefined;
  readonly #nodes: readonly BalancerNode[];

  constructor(nodes: readonly BalancerNode[], health: HealthView | undefined) {
    this.#nodes = nodes;
    this.health = health;
  }

  accepts(slot: number): boolean {
    const node = this.#nodes[slot];
    if (this.tried !== undefined && this.tried.has(node)) return false;
    return this.health === undefined || this.health.isHealthy(node);
  }
}

class PriorityBalancer implements Balancer {
  readonly nodes: readonly BalancerNode[];
  readonly #groups: number;
  readonly #picker: SlotPicker;
  readonly #usable: UsableSlots;
  readonly #health: HealthView | undefined;
  readonly #slotOf: Map<BalancerNode, number>;

  constructor(nodes: readonly BalancerNode[], groups: number, picker: SlotPicker, health: HealthView | undefined) {
    this.nodes = nodes;
    this.#groups = groups;
    this.#picker = picker;
    this.#health = health;
    this.#usable = new UsableSlots(nodes, health);
    this.#slotOf = new Map(nodes.map((node, slot) => [node, slot]));
  }

  pick(ctx: BalanceContext, tried?: ReadonlySet<BalancerNode>): BalancerNode | undefined {
    const hasTried = tried !== undefined && tried.size > 0;
    // Without tried nodes or health checks every grouped node is usable: skip the filter calls.
    let usable: UsableSlots | undefined;
    if (hasTried || this.#health !== undefined) {
      usable = this.#usable;
      usable.tried = hasTried ? tried : undefined;
    }
    let picked: BalancerNode | undefined;
    for (let group = 0; group < this.#groups; group++) {
      const slot = this.#picker.pick(group, ctx, usable);
      if (slot >= 0) {
        picked = this.nodes[slot];
        break;
      }
    }
    if (usable !== undefined) usable.tried = undefined;
    return picked;
  }

  begin(node: BalancerNode): void {
    const slot = this.#slotOf.get(node);
    if (slot !== undefined && this.#picker.begin) this.#picker.begin(slot);
  }

  end(node: BalancerNode, latencyMs: number, failed: boolean): void {
    const slot = this.#slotOf.get(node);
    if (slot !== undefined && this.#picker.end) this.#picker.end(slot, latencyMs, failed);
  }
}

export interface BalancerOptions {
  /** Clock and random seed for ewma (tests pass their own). */
  ewma?: EwmaOptions;
}

/** A balancer of `upstream.type` (roundrobin when unset) over `nodes`, normally normalizeNodes(upstream.nodes). */
export function createBalancer(
  upstream: Upstream,
  nodes: readonly BalancerNode[],
  health?: HealthView,
  options: BalancerOptions = {},
): Balancer {
  const groups = priorityGroups(nodes);
  let picker: SlotPicker;
  switch (upstream.type) {
    case 'chash':
      picker = createChash(nodes, groups, upstream);
      break;
    case 'least_conn':
      picker = createLeastConn(nodes, groups);
      break;
    case 'ewma':
      picker = createEwma(nodes, groups, options.ewma);
      break;
    default:
      picker = createRoundRobin(nodes, groups);
  }
  return new PriorityBalancer(nodes, groups.length, picker, health);
}
