// A small seeded generator (mulberry32) for the random tests: the same seed
// gives the same sequence on every run and backend, so a failing case replays.

/** Integers in [0, limit). */
export function seededIntegers(seed: number): (limit: number) => number {
  const next = seededWords(seed);
  return (limit) => (next() % limit) >>> 0;
}

/** Numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  const next = seededWords(seed);
  return () => next() / 4294967296;
}

/** Unsigned 32-bit words. */
function seededWords(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
