import { readFileSync, readdirSync } from 'node:fs';

/** <sched.h> policies as /proc reports them. */
export const SCHED_OTHER = 0;
export const SCHED_IDLE = 5;

/** The scheduling policy of one thread: field 41 of /proc/<pid>/task/<tid>/stat (after the command name). */
export function threadPolicy(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

/** The policy of every thread of a process, by thread id. */
export function processPolicies(pid: number): Map<number, number> {
  const policies = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      policies.set(Number(tid), threadPolicy(pid, Number(tid)));
    } catch {
      // The thread ended while listing.
    }
  }
  return policies;
}
