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
const COARSE_TICK_MS = 100;

export interface EwmaOptions {
  /** Cell 0 holds the current time in milliseconds; by default a coarse clock refreshed every 100 ms. */
  readonly timeCell?: Float64Array;
  /** Seed of the generator that draws the two candidates (a fixed seed makes picks repeat). */
  readonly seed?: number;
}

// Date.now(), performance.now() and Math.random() each box their double result
// (16 bytes per call); a pick reads this timer-refreshed cell and an integer
// generator instead, so it allocates nothing. 100 ms is fine against a 10 s decay.
const coarseTime = new Float64Array(1);
let coarseTicker: NodeJS.Timeout | undefined;

function coarseClock(): Float64Array {
  if (coarseTicker === undefined) {
    coarseTime[0] = performance.now();
    coarseTicker = setInterval(() => {
      coarseTime[0] = performance.now();
    }, COARSE_TICK_MS);
    coarseTicker.unref();
  }
  return coarseTime;
}

/** xorshift32 step on state[0]; returns an integer in [0, bound). */
function randomBelow(state: Int32Array, bound: number): number {
  let x = state[0];
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  state[0] = x;
  // Keep 30 bits so the value stays a small integer and is never boxed.
  return (x >>> 2) % bound;
}

export function createEwma(
  nodes: readonly BalancerNode[],
  groups: readonly Int32Array[],
  options: EwmaOptions = {},
): SlotPicker {
  const time = options.timeCell ?? coarseClock();
  const randomState = Int32Array.of(options.seed ?? Math.floor(Math.random() * 0x7fffffff));
  if (randomState[0] === 0) randomState[0] = 0x2545f491;
  const average = new Float64Array(nodes.length);
  const touchedAt = new Float64Array(nodes.length);
  const active = new Int32Array(nodes.length);
  const sampled = new Uint8Array(nodes.length);

  // The two costs are computed inline, not in a helper: a helper that returns a
  // double boxes it (16 bytes) whenever V8 decides not to inline the call.
  function better(a: number, b: number): number {
    const now = time[0];
    const elapsedA = now - touchedAt[a];
    const elapsedB = now - touchedAt[b];
    const costA = (elapsedA > 0 ? average[a] * Math.exp(-elapsedA / DECAY_MS) : average[a]) * (active[a] + 1);
    const costB = (elapsedB > 0 ? average[b] * Math.exp(-elapsedB / DECAY_MS) : average[b]) * (active[b] + 1);
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
      const first = randomBelow(randomState, count);
      let second = randomBelow(randomState, count - 1);
      if (second >= first) second++;
      if (usable === undefined) return better(slots[first], slots[second]);
      return better(nthUsable(slots, usable, first), nthUsable(slots, usable, second));
    },
    begin(slot: number): void {
      active[slot]++;
    },
    end(slot: number, latencyMs: number, failed: boolean): void {
      if (active[slot] > 0) active[slot]--;
      const sample = Math.max(0, latencyMs) + (failed ? FAILURE_PENALTY_MS : 0);
      const now = time[0];
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
