// Where every benchmark leaves its JSON report: bench/results/<kind>-<time>.json
// (machine-specific results, ignored by git through the root .gitignore).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const RESULTS_DIR = path.resolve(__dirname, '..', '..', '..', 'bench', 'results');

/** Write `report` as JSON and return the file's path relative to the current directory. */
export function writeReport(kind: string, report: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  return path.relative(process.cwd(), file);
}

/** What a report says of the machine it ran on (the load average too: this machine is shared). */
export function machineInfo(): Record<string, unknown> {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    platform: os.platform(),
    load: os.loadavg(),
  };
}

/** `n` with thousands separators and exactly `digits` decimals, for the printed tables. */
export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
