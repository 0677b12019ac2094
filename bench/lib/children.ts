// Child processes of a benchmark run: every one is tracked and killed at the
// end, on failure too, so no nginx or gateway is left behind.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Child {
  name: string;
  process: ChildProcess;
  /** The last few kB of stdout+stderr, for error messages. */
  output(): string;
}

const running = new Set<Child>();

/**
 * `command args`, run under SCHED_IDLE when `idle` (util-linux chrt; children
 * and threads inherit it): for side load standing in for other hosts' clients
 * and servers, which must not take this machine's cores from what is measured.
 */
export function commandLine(command: string, args: string[], idle: boolean): [string, string[]] {
  return idle ? ['chrt', ['--idle', '0', command, ...args]] : [command, args];
}

export function startChild(name: string, command: string, args: string[], options: SpawnOptions = {}): Child {
  // detached: own process group, so a kill reaches the whole tree (e.g. cluster workers).
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const entry: Child = { name, process: child, output: () => output };
  running.add(entry);
  child.on('exit', () => running.delete(entry));
  return entry;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM every child, then SIGKILL whatever is left after `graceMs`. */
export async function stopAllChildren(graceMs = 3000): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.process.exitCode !== null || child.process.signalCode !== null) return resolve();
          const timer = setTimeout(() => killGroup(child.process, 'SIGKILL'), graceMs);
          child.process.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          killGroup(child.process, 'SIGTERM');
        }),
    ),
  );
}

/** Last-resort cleanup when the benchmark process itself is exiting. */
export function killAllChildrenNow(): void {
  for (const child of running) killGroup(child.process, 'SIGKILL');
}

/** Run a command to completion and return its stdout; rejects on a non-zero exit. */
export function run(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} failed (code ${code}, signal ${signal}): ${stderr.trim()}`));
    });
  });
}
