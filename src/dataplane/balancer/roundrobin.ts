// Smooth weighted round robin, nginx's algorithm: every usable node gains its
// weight, the node with the most wins and gives back the total. Weights 5,1,1
// give a a b a c a a: the heavy node is spread out instead of picked in a run.

import type { BalancerNode, SlotFilter, SlotPicker } from './types';

export function createRoundRobin(nodes: readonly BalancerNode[], groups: readonly Int32Array[]): SlotPicker {
  const weights = Float64Array.from(nodes, (node) => node.weight);
  const current = new Float64Array(nodes.length);

  return {
    pick(group: number, _ctx: unknown, usable: SlotFilter | undefined): number {
      const slots = groups[group];
      let best = -1;
      let total = 0;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        if (usable !== undefined && !usable.accepts(slot)) continue;
        current[slot] += weights[slot];
        total += weights[slot];
        if (best < 0 || current[slot] > current[best]) best = slot;
      }
      if (best >= 0) current[best] -= total;
      return best;
    },
  };
}
