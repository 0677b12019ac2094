// Allocation checks for hot paths: run a script in a child process started
// with --expose-gc and a young generation large enough that no collection runs
// during a measured loop, and report heap bytes per call. A real allocation
// costs at least 16 bytes per call; JIT warm-up leaves well under one.
import { execFileSync } from 'node:child_process';

/**
 * JavaScript source defining `measure(name, fn)`, which stores bytes per call
 * in `results[name]`. Best of three runs: a run during which the JIT
 * re-optimises `fn` can show a transient allocation; a real per-call
 * allocation shows in every run.
 */
const MEASURE_SOURCE = `
const results = {};
function measure(name, fn) {
  for (let i = 0; i < 200000; i++) fn();
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1000000; i++) fn();
    best = Math.min(best, (process.memoryUsage().heapUsed - before) / 1000000);
  }
  results[name] = best;
}
`;

/**
 * Runs `body` (which calls `measure(...)` and may add to `sink`) and returns
 * bytes per call by measurement name, plus the sink that keeps calls alive.
 */
export function measureAllocations(body: string): { results: Record<string, number>; sink: number } {
  const script = `${MEASURE_SOURCE}\nlet sink = 0;\n${body}\nprocess.stdout.write(JSON.stringify({ results, sink }));`;
  const output = execFileSync(
    process.execPath,
    ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=128', '-e', script],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(output) as { results: Record<string, number>; sink: number };
}
