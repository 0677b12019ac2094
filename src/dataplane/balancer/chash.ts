// Consistent hashing. Each node owns CHASH_POINTS_PER_WEIGHT points per unit
// of weight on a 32-bit ring (scaled down to at most CHASH_MAX_POINTS points
// per priority group); a request's key hashes to a position and the first
// point at or after it names the node. The points depend only on the node
// addresses and weights, so rebuilding the balancer keeps every mapping, and
// adding a node moves only the keys that land on its new points. A retry walks
// on round the ring to the next node that is neither tried nor unhealthy.
//
// The key follows APISIX's hash_on: `vars` (a variable named by `key`,
// default), `header` (http_<key>), `cookie` (cookie_<key>), `consumer`, or
// `vars_combinations` (`$request_uri$remote_addr`). No key value falls back
// to the client address.

import type { Upstream } from '../../schema/types';
import type { VarValue } from '../../core/expr';
import type { BalanceContext, BalancerNode, SlotFilter, SlotPicker } from './types';

export const CHASH_POINTS_PER_WEIGHT = 160;
export const CHASH_MAX_POINTS = 1 << 16;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over UTF-16 code units, continuing from `state`; finish with mixHash. */
function hashString(state: number, text: string): number {
  let hash = state;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash;
}

/** murmur3's finaliser: spreads FNV's weak low bits over the whole word. */
function mixHash(state: number): number {
  let hash = state;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

export function hashKey(text: string): number {
  return mixHash(hashString(FNV_OFFSET, text));
}

interface Ring {
  readonly points: Uint32Array;
  readonly owners: Int32Array;
}

function buildRing(nodes: readonly BalancerNode[], slots: Int32Array): Ring {
  let totalWeight = 0;
  for (const slot of slots) totalWeight += nodes[slot].weight;
  const perWeight = Math.min(CHASH_POINTS_PER_WEIGHT, CHASH_MAX_POINTS / Math.max(totalWeight, 1));
  const entries: { point: number; slot: number; address: string }[] = [];
  for (const slot of slots) {
    const node = nodes[slot];
    const count = Math.max(1, Math.round(node.weight * perWeight));
    for (let i = 0; i < count; i++) {
      entries.push({ point: hashKey(`${node.address}#${i}`), slot, address: node.address });
    }
  }
  // Ties are ordered by address so the ring does not depend on node order.
  entries.sort((a, b) => a.point - b.point || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return {
    points: Uint32Array.from(entries, (entry) => entry.point),
    owners: Int32Array.from(entries, (entry) => entry.slot),
  };
}

/** Index of the first point >= position, wrapping to 0 past the end. */
function firstPointAtOrAfter(points: Uint32Array, position: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle] < position) low = middle + 1;
    else high = middle;
  }
  return low === points.length ? 0 : low;
}

type KeyHasher = (ctx: BalanceContext) => number;

function valueText(value: VarValue): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

function hashVariable(name: string): KeyHasher {
  return (ctx) => hashKey(valueText(ctx.vars(name)) ?? ctx.remoteAddr);
}

/** `$request_uri$remote_addr` or `${request_uri}...` as literal parts and variable names, hashed part by part. */
function hashCombination(template: string): KeyHasher {
  const literals: string[] = [];
  const names: string[] = [];
  const pattern = /(?<!\\)\$(?:\{(\w+)\}|(\w+))/g;
  let last = 0;
  for (let match = pattern.exec(template); match; match = pattern.exec(template)) {
    literals.push(template.slice(last, match.index));
    names.push(match[1] ?? match[2]);
    last = match.index + match[0].length;
  }
  const tail = template.slice(last);
  return (ctx) => {
    // Hashed piecewise so the combined key is never built as a string.
    let state = FNV_OFFSET;
    let resolved = 0;
    for (let i = 0; i < names.length; i++) {
      state = hashString(state, literals[i]);
      const text = valueText(ctx.vars(names[i]));
      if (text !== undefined) {
        resolved++;
        state = hashString(state, text);
      }
    }
    if (resolved === 0) return hashKey(ctx.remoteAddr);
    return mixHash(hashString(state, tail));
  };
}

function keyHasher(upstream: Upstream): KeyHasher {
  const key = upstream.key ?? '';
  switch (upstream.hash_on) {
    case 'header':
      return hashVariable('http_' + key.toLowerCase().replace(/-/g, '_'));
    case 'cookie':
      return hashVariable('cookie_' + key);
    case 'consumer':
      return (ctx) => hashKey(ctx.consumerName ?? ctx.remoteAddr);
    case 'vars_combinations':
      return hashCombination(key);
    default:
      return key === '' ? (ctx) => hashKey(ctx.remoteAddr) : hashVariable(key.replace(/^\$/, ''));
  }
}

export function createChash(
  nodes: readonly BalancerNode[],
  groups: readonly Int32Array[],
  upstream: Upstream,
): SlotPicker {
  const rings = groups.map((slots) => buildRing(nodes, slots));
  const hashOf = keyHasher(upstream);

  return {
    pick(group: number, ctx: BalanceContext, usable: SlotFilter | undefined): number {
      const { points, owners } = rings[group];
      if (points.length === 0) return -1;
      const start = firstPointAtOrAfter(points, hashOf(ctx));
      if (usable === undefined) return owners[start];
      for (let step = 0, i = start; step < points.length; step++) {
        if (usable.accepts(owners[i])) return owners[i];
        if (++i === points.length) i = 0;
      }
      return -1;
    },
  };
}
