// Least connections, as APISIX scores it: the node with the lowest
// (active + 1) / weight wins, the earlier node on a tie. begin/end keep the
// count of requests in flight per node.

import type { BalancerNode, SlotFilter, SlotPicker } from './types';

export function createLeastConn(nodes: readonly BalancerNode[], groups: readonly Int32Array[]): SlotPicker {
  const weights = Float64Array.from(nodes, (node) => node.weight);
  const active = new Int32Array(nodes.length);

  return {
    pick(group: number, _ctx: unknown, usable: SlotFilter | undefined): number {
      const slots = groups[group];
      let best = -1;
      let bestScore = Infinity;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        if (usable !== undefined && !usable.accepts(slot)) continue;
        const score = (active[slot] + 1) / weights[slot];
        if (score < bestScore) {
          best = slot;
          bestScore = score;
        }
      }
      return best;
    },
    begin(slot: number): void {
      active[slot]++;
    },
    end(slot: number): void {
      if (active[slot] > 0) active[slot]--;
    },
  };
}
