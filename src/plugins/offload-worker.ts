// A thread of the offload pool (offload.ts): loads plugin modules by path,
// runs the task a message names and posts the result back. Buffers in the
// result move to the main thread instead of being copied when they own their
// whole ArrayBuffer.
//
// Plugin reload: the loader re-requires a changed plugin file in the main
// thread, but this thread has its own module cache. Before each task the file
// is stat()ed (here, off the proxying thread); when its identity (inode, size,
// mtime, ctime) differs from the copy loaded, this thread's require cache for
// the plugin's directory is dropped and the file is loaded again, so a task
// sent after a reload runs the new code. A file that is gone keeps serving
// its last loaded copy (requests that started before the plugin was removed).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ownsWholeBuffer } from '../core/buffers';
import type { PluginModule } from './types';

/** A task request from the pool. */
export interface OffloadRequest {
  readonly id: number;
  readonly source: string;
  readonly task: string;
  readonly payload: unknown;
}

/** Memory the proxying thread is done with (OffloadPool.release): dropping it here is all there is to do. */
export interface OffloadRelease {
  readonly release: ArrayBuffer;
}

/** The answer: `error` set when the task threw (or could not be found); `warning` alone is a message to log. */
export interface OffloadResponse {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
  readonly warning?: string;
}

/** What the pool gives each thread at start. */
export interface OffloadThreadData {
  readonly nice: number;
}

type Task = (payload: unknown) => unknown;

interface LoadedTasks {
  readonly tasks: Readonly<Record<string, Task>>;
  /** inode, size, mtime and ctime of the file it was loaded from. */
  readonly identity: string;
}

const loadedBySource = new Map<string, LoadedTasks>();

function fileIdentity(file: string): string | undefined {
  try {
    const stat = fs.statSync(file, { bigint: true });
    return `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/** Forget every module under the plugin's directory, so helpers it requires are read again too (as the loader does). */
function forgetModulesUnder(dir: string): void {
  const prefix = dir + path.sep;
  for (const key of Object.keys(require.cache)) if (key.startsWith(prefix)) delete require.cache[key];
}

function tasksOf(source: string): Readonly<Record<string, Task>> {
  const identity = fileIdentity(source);
  const loaded = loadedBySource.get(source);
  if (loaded !== undefined && (identity === undefined || identity === loaded.identity)) return loaded.tasks;
  if (loaded !== undefined) forgetModulesUnder(path.dirname(source));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const exported = require(source) as { default?: PluginModule } & Partial<PluginModule>;
  const tasks = (exported.default ?? exported).tasks ?? {};
  loadedBySource.set(source, { tasks, identity: identity ?? '' });
  return tasks;
}

/** Structured clone turns a Buffer into a plain Uint8Array: give tasks a Buffer view again (no copy). */
function asBuffer(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  return value;
}

/** ArrayBuffers a result can give away: only ones a Buffer fully owns (never a slab of Node's buffer pool). */
function transferablesOf(result: unknown): ArrayBuffer[] {
  if (result instanceof ArrayBuffer) return [result];
  if (ArrayBuffer.isView(result) && result.buffer instanceof ArrayBuffer && ownsWholeBuffer(result)) {
    return [result.buffer];
  }
  return [];
}

async function run(message: OffloadRequest): Promise<void> {
  let response: OffloadResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const task = tasksOf(message.source)[message.task];
    if (typeof task !== 'function') throw new Error(`no offload task "${message.task}" in ${message.source}`);
    const result = await task(asBuffer(message.payload));
    transfer = transferablesOf(result);
    response = { id: message.id, result };
  } catch (err) {
    response = { id: message.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(response, transfer);
}

/**
 * Lower this thread's CPU priority. On Linux setpriority(PRIO_PROCESS, 0)
 * applies to the calling thread only (man 2 setpriority, NOTES), which is what
 * os.setPriority(0, n) calls; elsewhere it would renice the whole process, so
 * it is not done there.
 */
function lowerPriority(nice: number): void {
  if (process.platform !== 'linux' || nice === 0) return;
  try {
    os.setPriority(0, nice);
  } catch (err) {
    // A negative niceness needs CAP_SYS_NICE; the thread runs at the default priority.
    const warning = `offload thread priority not set to nice ${nice}: ${(err as Error).message}`;
    parentPort?.postMessage({ id: 0, warning } satisfies OffloadResponse);
  }
}

if (parentPort !== null) {
  lowerPriority((workerData as OffloadThreadData | undefined)?.nice ?? 0);
  parentPort.on('message', (message: OffloadRequest | OffloadRelease) => {
    if ('release' in message) return; // collected with this thread's garbage
    void run(message);
  });
}
