// Background work (the metrics exporter's rendering) at Linux's lowest CPU
// priority, SCHED_IDLE: such a thread runs only on a core nothing else wants,
// a waking proxy thread preempts it at once, and the scheduler places wakeups
// on a core running only idle threads as if it were free. nice 19 is not
// enough beside a latency-bound proxy on a small machine. Measured on this
// project's 2-core VM (requests through nginx alone, 5,800 req/s open loop,
// p99; beside them a process rendering and gzipping 10,000 routes' metrics
// once a second):
//   - no such process: 1.4-1.6 ms;
//   - at nice 19 in its own autogroup: 2.9-6.6 ms;
//   - under SCHED_IDLE: 2.1-2.7 ms;
//   - under SCHED_IDLE, rendering into reused memory (../plugins/lib/byte-arena.ts): 1.6-1.7 ms.
//
// Not for the offload pool's threads: in bench:plugins part b the bare route's
// p99 beside a closed-loop gzip client was 3.3-4.8 ms with them under
// SCHED_IDLE (two runs) and 4.0-4.2 ms at nice 19 the same day. No gain was
// shown, so they stay at nice 19 (src/plugins/offload.ts).
//
// sched_setscheduler() is called through koffi on libc directly: it is a
// system call, not part of the native hot path, so no backend mirrors it.
// Unprivileged threads may always move to SCHED_IDLE (sched(7)); the way back
// needs privilege, so nothing here ever raises a priority.

import { readdirSync } from 'node:fs';

// koffi ships ESM type declarations; its CommonJS entry is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require('koffi') as typeof import('koffi', { with: { 'resolution-mode': 'import' } }).default;

/** <sched.h>: SCHED_IDLE. */
const SCHED_IDLE = 5;

type SetScheduler = (tid: number, policy: number, param: Int32Array) => number;

/**
 * Move every thread of this process to SCHED_IDLE (V8's and libuv's threads
 * too; threads started later inherit it from the thread that starts them).
 * False where that is not possible (not Linux, no glibc) or failed for a thread.
 */
export function idleThisProcess(): boolean {
  if (process.platform !== 'linux') return false;
  let setScheduler: SetScheduler;
  let tids: string[];
  try {
    const libc = koffi.load('libc.so.6');
    setScheduler = libc.func('int sched_setscheduler(int pid, int policy, const int *param)') as SetScheduler;
    tids = readdirSync('/proc/self/task');
  } catch {
    // No glibc under that name (musl), or no /proc: the process keeps its nice value.
    return false;
  }
  // struct sched_param { int sched_priority; }: 0 for SCHED_IDLE.
  const param = new Int32Array(1);
  let all = true;
  // A thread that ended since the listing fails (ESRCH); it needs no priority then.
  for (const tid of tids) all = setScheduler(Number(tid), SCHED_IDLE, param) === 0 && all;
  return all;
}
