// The data plane's side of health checks, one per compiled upstream with
// checks: which nodes the balancer may pick (a local copy of the shared state,
// refreshed by the DataPlane every HEALTH_REFRESH_MS) and, with passive checks,
// the reporter that counts real responses into the shared state.

import type { BalancerNode, HealthView } from '../dataplane/balancer';
import type { SharedDict } from '../native/shdict';
import type { Upstream } from '../schema/types';
import { passiveSettings, StatusClass, type PassiveSettings } from './config';
import { NodeKeys } from './keys';
import { isHealthyState, Outcome, recordOutcome, recordSuccessWhileHealthy } from './state';

function hasCount(value: string | number | undefined): boolean {
  return typeof value === 'number' && value !== 0;
}

/** How often a DataPlane copies health state from the shared dictionary. */
export const HEALTH_REFRESH_MS = 100;

/** What the proxy reports after each upstream attempt (passive checks). */
export interface PassiveReporter {
  /** The node answered with a response head of this status. */
  status(node: BalancerNode, status: number): void;
  /** Connecting was refused or failed, or the connection broke before a response head. */
  tcpFailure(node: BalancerNode): void;
  /** Connecting, or waiting for the response head, timed out. */
  timeout(node: BalancerNode): void;
}

export class UpstreamHealth implements HealthView, PassiveReporter {
  readonly upstreamId: string;
  readonly #dict: SharedDict;
  readonly #keys: NodeKeys[];
  readonly #slotOf: Map<BalancerNode, number>;
  /** 1 = healthy, per node slot; a typed array so the per-pick check is one read. */
  readonly #healthy: Uint8Array;
  /**
   * 1 = the node may have failures counted (seen at the last refresh, or reported here
   * since), so a success must clear them. Kept locally so that a good response on a
   * healthy node, the common case, touches no dictionary; a failure another process
   * counted less than a refresh ago can then outlive one success here.
   */
  readonly #failuresPending: Uint8Array;
  /** Every node is unhealthy: APISIX then uses all of them rather than none. */
  #allDown = false;
  readonly #passive: PassiveSettings | null;

  constructor(dict: SharedDict, upstreamId: string, upstream: Upstream, nodes: readonly BalancerNode[]) {
    this.upstreamId = upstreamId;
    this.#dict = dict;
    this.#keys = nodes.map((node) => new NodeKeys(upstreamId, node.address));
    this.#slotOf = new Map(nodes.map((node, slot) => [node, slot]));
    this.#healthy = new Uint8Array(nodes.length).fill(1);
    this.#failuresPending = new Uint8Array(nodes.length);
    // APISIX: "passive health check needs active to recover" — an unhealthy node gets no
    // traffic, so only active checks can bring it back; passive checks need active ones.
    const checks = upstream.checks;
    this.#passive =
      checks?.active !== undefined && checks.passive !== undefined ? passiveSettings(checks.passive) : null;
    this.refresh();
  }

  /** This upstream's passive reporter, or null when it has no passive checks. */
  get passive(): PassiveReporter | null {
    return this.#passive === null ? null : this;
  }

  isHealthy(node: BalancerNode): boolean {
    if (this.#allDown) return true;
    const slot = this.#slotOf.get(node);
    return slot === undefined || this.#healthy[slot] === 1;
  }

  /** Copy every node's state (and, with passive checks, whether failures are counted) from the dictionary. */
  refresh(): void {
    const healthy = this.#healthy;
    const passive = this.#passive !== null;
    for (let slot = 0; slot < healthy.length; slot++) {
      const keys = this.#keys[slot];
      healthy[slot] = isHealthyState(this.#dict.get(keys.state)) ? 1 : 0;
      if (passive) this.#failuresPending[slot] = hasCount(this.#dict.get(keys.failures)) ? 1 : 0;
    }
    this.#updateAllDown();
  }

  #updateAllDown(): void {
    const healthy = this.#healthy;
    let up = 0;
    for (let slot = 0; slot < healthy.length; slot++) up += healthy[slot];
    this.#allDown = healthy.length > 0 && up === 0;
  }

  #record(node: BalancerNode, outcome: Outcome): void {
    const settings = this.#passive;
    const slot = this.#slotOf.get(node);
    if (settings === null || slot === undefined) return;
    const keys = this.#keys[slot];
    if (outcome === Outcome.Success && this.#healthy[slot] === 1) {
      if (this.#failuresPending[slot] === 0) return;
      this.#failuresPending[slot] = 0;
      recordSuccessWhileHealthy(this.#dict, keys, settings.thresholds);
      return;
    }
    const healthy = recordOutcome(this.#dict, keys, outcome, settings.thresholds) ? 1 : 0;
    // A failure on a node that stays healthy was counted; a change of state starts the counts again.
    this.#failuresPending[slot] = outcome !== Outcome.Success && healthy === 1 ? 1 : 0;
    if (healthy !== this.#healthy[slot]) {
      // Take the node out (or back) here at once rather than at the next refresh.
      this.#healthy[slot] = healthy;
      this.#updateAllDown();
    }
  }

  status(node: BalancerNode, status: number): void {
    const settings = this.#passive;
    if (settings === null) return;
    const kind = status >= 0 && status < settings.statuses.length ? settings.statuses[status] : StatusClass.Ignored;
    if (kind === StatusClass.Success) this.#record(node, Outcome.Success);
    else if (kind === StatusClass.Failure) this.#record(node, Outcome.HttpFailure);
  }

  tcpFailure(node: BalancerNode): void {
    this.#record(node, Outcome.TcpFailure);
  }

  timeout(node: BalancerNode): void {
    this.#record(node, Outcome.Timeout);
  }
}
