// Peak EWMA with power of two choices. Each node keeps an exponentially
// weighted moving average of its latency that decays with time (10 s, as
// APISIX's ewma balancer) and jumps straight to a sample above it (the "peak"
// part), so a node turning slow is noticed at once and forgiven gradually.
// A pick draws two random usable nodes and takes the lower cost, where cost is
// the decayed average times (requests in flight + 1). A failed request counts
// as a sample FAILURE_PENALTY_MS slower than it was.

import type { BalancerNode, SlotFilter, SlotPicker } from './types';

const DECAY_MS = 10_000;
const FAILURE_PENALTY_MS = 1_000;

export interface EwmaClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** A number in [0, 1). */
  random(): number;
}

const systemClock: EwmaClock = { now: () => performance.now(), random: Math.random };

export function createEwma(
  nodes: readonly BalancerNode[],
  groups: readonly Int32Array[],
  clock: EwmaClock = systemClock,
): SlotPicker {
  const average = new Float64Array(nodes.length);
  const touchedAt = new Float64Array(nodes.length);
  const active = new Int32Array(nodes.length);
  const sampled = new Uint8Array(nodes.length);

  function decayed(slot: number, now: number): number {
    const elapsed = now - touchedAt[slot];
    return elapsed > 0 ? average[slot] * Math.exp(-elapsed / DECAY_MS) : average[slot];
  }

  function cost(slot: number, now: number): number {
    return decayed(slot, now) * (active[slot] + 1);
  }

  function better(a: number, b: number, now: number): number {
    const costA = cost(a, now);
    const costB = cost(b, now);
    if (costA !== costB) return costA < costB ? a : b;
    return active[a] <= active[b] ? a : b;
  }

  return {
    pick(group: number, _ctx: unknown, usable: SlotFilter | undefined): number {
      const slots = groups[group];
      let count = slots.length;
      if (usable !== undefined) {
        count = 0;
        for (let i = 0; i < slots.length; i++) if (usable.accepts(slots[i])) count++;
      }
      if (count === 0) return -1;
      if (count === 1) return usable === undefined ? slots[0] : nthUsable(slots, usable, 0);
      const first = Math.floor(clock.random() * count);
      let second = Math.floor(clock.random() * (count - 1));
      if (second >= first) second++;
      const now = clock.now();
      if (usable === undefined) return better(slots[first], slots[second], now);
      return better(nthUsable(slots, usable, first), nthUsable(slots, usable, second), now);
    },
    begin(slot: number): void {
      active[slot]++;
    },
    end(slot: number, latencyMs: number, failed: boolean): void {
      if (active[slot] > 0) active[slot]--;
      const sample = Math.max(0, latencyMs) + (failed ? FAILURE_PENALTY_MS : 0);
      const now = clock.now();
      if (!sampled[slot]) {
        sampled[slot] = 1;
        average[slot] = sample;
      } else {
        // The older the last sample, the more the new one counts.
        const keep = Math.exp(-Math.max(0, now - touchedAt[slot]) / DECAY_MS);
        const previous = average[slot] * keep;
        average[slot] = sample > previous ? sample : previous + sample * (1 - keep);
      }
      touchedAt[slot] = now;
    },
  };
}

/** The slot of the `n`-th usable node of the group (0-based). */
function nthUsable(slots: Int32Array, usable: SlotFilter, n: number): number {
  for (let i = 0; i < slots.length; i++) {
    if (usable.accepts(slots[i]) && n-- === 0) return slots[i];
  }
  return -1;
}
