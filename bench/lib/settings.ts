// Benchmark settings from the environment (BENCH_ROUNDS=3 and the like).

/** A positive integer from `text` (an environment variable), or `fallback` when unset or not one. */
export function positiveInt(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}
