// Run wrk and read its summary. wrk is a closed-loop generator: its latency
// percentiles are indicative only (coordinated omission), its req/s is sound.

import { commandLine, run } from './children';

export interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function toMs(value: string, unit: string): number {
  const amount = Number(value);
  if (unit === 'us') return amount / 1000;
  if (unit === 's') return amount * 1000;
  if (unit === 'm') return amount * 60_000;
  return amount;
}

export function parseWrkOutput(output: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const p50 = /\s50%\s+([\d.]+)(us|ms|s|m)\b/.exec(output);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s|m)\b/.exec(output);
  const total = /(\d+) requests in/.exec(output);
  if (!rps || !p99 || !p50 || !total) throw new Error(`cannot read wrk output:\n${output}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: toMs(p50[1], p50[2]),
    p99Ms: toMs(p99[1], p99[2]),
    requests: Number(total[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

export async function runWrk(
  url: string,
  options: {
    threads: number;
    connections: number;
    seconds: number;
    headers?: string[];
    /** Run under SCHED_IDLE (side load, see commandLine). */
    idle?: boolean;
  },
): Promise<WrkResult> {
  const args = [
    ...(options.headers ?? []).flatMap((header) => ['-H', header]),
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--latency',
    '--timeout',
    '5s',
    url,
  ];
  const output = await run(...commandLine('wrk', args, options.idle === true), (options.seconds + 15) * 1000);
  return parseWrkOutput(output);
}
