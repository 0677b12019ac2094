// The offload pool: worker threads that run CPU-heavy plugin tasks (gzip of a
// large body, signature checks over big payloads) off the event loop that
// proxies requests. A task is named by the plugin module's path (`source`, set
// by the loader) and a task name; its payload and result cross threads by
// structured clone, with the ArrayBuffers listed in `transfer` moved instead
// of copied. Threads start on the first task, so a gateway whose plugins
// never offload runs none.
//
// What keeps the proxying thread's tail flat while the pool works:
// - pool threads run at the lowest CPU priority (nice 19 by default; Linux
//   only, where setpriority() inside a thread changes that thread alone), so
//   on a busy machine the event loop gets the core first;
// - one task per thread, and waiting tasks are bounded both in number and in
//   bytes: past either bound a task is refused (OffloadRefusedError), never
//   given a new thread.
// Worker threads re-read a plugin file that changed on disk (plugin reload),
// see offload-worker.ts.

import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { logger } from '../core/log';
import type { OffloadRelease, OffloadRequest, OffloadResponse, OffloadThreadData } from './offload-worker';

export interface OffloadPoolOptions {
  /** Worker threads; default min(2, cores). */
  size?: number;
  /** Tasks waiting for a thread past which new ones are refused; default 1024. */
  maxQueue?: number;
  /** Bytes of transferred payloads waiting for a thread past which new tasks are refused; default 64 MiB. */
  maxQueuedBytes?: number;
  /** Niceness of the pool threads, -20..19 (Linux; ignored elsewhere); default 19, the lowest priority. */
  nice?: number;
}

/** The pool refused a task (queue full or pool closed) before taking its payload: the caller still owns it. */
export class OffloadRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OffloadRefusedError';
  }
}

interface PendingTask {
  readonly message: OffloadRequest;
  readonly transfer: readonly ArrayBuffer[];
  readonly bytes: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

interface PoolThread {
  readonly worker: Worker;
  /** The task it runs now; one at a time, so a long task never hides others behind it on the same thread. */
  running: PendingTask | null;
}

const WORKER_FILE = path.join(__dirname, 'offload-worker.js');
const DEFAULT_MAX_QUEUE = 1024;
const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const DEFAULT_NICE = 19;
const log = logger('offload');

/** Results arrive as Uint8Array after structured clone: hand back a Buffer view (no copy). */
function asBuffer(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  return value;
}

function byteLengthOf(transfer: readonly ArrayBuffer[]): number {
  let bytes = 0;
  for (const buffer of transfer) bytes += buffer.byteLength;
  return bytes;
}

/** A bad `plugin_attr.offload` value: `field` is its path in config.yaml, `reason` what is wrong. */
export class OffloadSettingError extends Error {
  readonly field: string;
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.field = field;
    this.reason = reason;
  }
}

function integerIn(value: unknown, min: number, max: number, key: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OffloadSettingError(`plugin_attr.offload.${key}`, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * `plugin_attr.offload` of config.yaml: `threads`, `max_queue`,
 * `max_queued_bytes`, `nice`; every key optional. Throws with the key's path
 * when a value is out of range.
 */
export function parseOffloadAttr(raw: unknown): OffloadPoolOptions {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new OffloadSettingError('plugin_attr.offload', 'must be a mapping');
  const attr = raw as Record<string, unknown>;
  const options: OffloadPoolOptions = {};
  for (const key of Object.keys(attr)) {
    if (!['threads', 'max_queue', 'max_queued_bytes', 'nice'].includes(key)) {
      throw new OffloadSettingError(
        `plugin_attr.offload.${key}`,
        'unknown key (threads, max_queue, max_queued_bytes, nice)',
      );
    }
  }
  if (attr.threads !== undefined) options.size = integerIn(attr.threads, 1, 64, 'threads');
  if (attr.max_queue !== undefined) options.maxQueue = integerIn(attr.max_queue, 0, 1_000_000, 'max_queue');
  if (attr.max_queued_bytes !== undefined) {
    options.maxQueuedBytes = integerIn(attr.max_queued_bytes, 0, Number.MAX_SAFE_INTEGER, 'max_queued_bytes');
  }
  if (attr.nice !== undefined) options.nice = integerIn(attr.nice, -20, 19, 'nice');
  return options;
}

export class OffloadPool {
  readonly size: number;
  readonly maxQueue: number;
  readonly maxQueuedBytes: number;
  readonly nice: number;
  private readonly threads: PoolThread[] = [];
  private readonly queue: PendingTask[] = [];
  private queuedBytes = 0;
  private nextId = 1;
  private closed = false;

  constructor(options: OffloadPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? Math.min(2, os.availableParallelism()));
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.nice = options.nice ?? DEFAULT_NICE;
  }

  /** Threads running a task now (for tests and the control API). */
  get busy(): number {
    let count = 0;
    for (const thread of this.threads) if (thread.running !== null) count++;
    return count;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Threads started (they start on demand, up to `size`). */
  get started(): number {
    return this.threads.length;
  }

  /**
   * Run `task` of the plugin module at `source` with `payload`. The ArrayBuffers
   * in `transfer` are detached once a thread takes the task and belong to it
   * from then on; a refused task (OffloadRefusedError) leaves them untouched.
   */
  run<T>(source: string, task: string, payload: unknown, transfer: readonly ArrayBuffer[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new OffloadRefusedError('offload pool is closed'));
    const bytes = byteLengthOf(transfer);
    const idle = this.threads.length < this.size || this.threads.some((thread) => thread.running === null);
    if (!idle) {
      if (this.queue.length >= this.maxQueue) {
        return Promise.reject(new OffloadRefusedError(`offload queue is full (${this.maxQueue} tasks waiting)`));
      }
      if (this.queuedBytes + bytes > this.maxQueuedBytes) {
        return Promise.reject(
          new OffloadRefusedError(
            `offload queue is full (${this.queuedBytes} bytes waiting, bound ${this.maxQueuedBytes})`,
          ),
        );
      }
    }
    return new Promise<T>((resolve, reject) => {
      const message: OffloadRequest = { id: this.nextId++, source, task, payload };
      this.queue.push({ message, transfer, bytes, resolve: resolve as (value: unknown) => void, reject });
      this.queuedBytes += bytes;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let thread = this.threads.find((candidate) => candidate.running === null);
      if (thread === undefined) {
        if (this.threads.length >= this.size) return;
        thread = this.startThread();
      }
      const task = this.queue.shift()!;
      this.queuedBytes -= task.bytes;
      thread.running = task;
      try {
        thread.worker.postMessage(task.message, task.transfer as ArrayBuffer[]);
      } catch (err) {
        // Cloning failed (a function in the payload, an already detached buffer): the thread stays free.
        thread.running = null;
        task.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /**
   * Free a large ArrayBuffer the caller is done with on a pool thread. An
   * ArrayBuffer left to this thread's GC counts toward V8's external memory
   * until a collection finds it, and at a few MiB a second that starts a full
   * mark-compact every second or two on the thread that proxies requests: the
   * data plane's held response bodies did that, at 3 to 5 times the p99 of
   * other routes (bench:plugins b). Transferred, the buffer is detached here at
   * once, with its accounting, and the thread that receives it collects it. A
   * thread is started for it if none runs yet. The caller must not use the
   * buffer (or a view of it) again, and nothing may still be writing from it.
   */
  release(buffer: ArrayBuffer): void {
    if (this.closed || buffer.byteLength === 0) return;
    let thread = this.threads.find((candidate) => candidate.running === null) ?? this.threads[0];
    if (thread === undefined) thread = this.startThread();
    const message: OffloadRelease = { release: buffer };
    try {
      thread.worker.postMessage(message, [buffer]);
    } catch {
      // Not transferable after all (shared or already detached): the GC keeps it.
    }
  }

  private startThread(): PoolThread {
    const workerData: OffloadThreadData = { nice: this.nice };
    const worker = new Worker(WORKER_FILE, { workerData });
    const thread: PoolThread = { worker, running: null };
    worker.unref(); // an idle pool never keeps the process alive
    worker.on('message', (response: OffloadResponse) => {
      if (response.warning !== undefined) {
        log.warn(response.warning);
        return;
      }
      const task = thread.running;
      thread.running = null;
      if (task !== null && task.message.id === response.id) {
        if (response.error !== undefined) task.reject(new Error(response.error));
        else task.resolve(asBuffer(response.result));
      }
      this.dispatch();
    });
    worker.on('error', (err: Error) => {
      log.error('offload thread failed', { message: err.message });
      this.threadGone(thread, err);
    });
    worker.on('exit', (code) => {
      if (!this.closed) this.threadGone(thread, new Error(`offload thread exited with code ${code}`));
    });
    this.threads.push(thread);
    return thread;
  }

  /** A thread died: fail its task and let the next dispatch start a replacement. */
  private threadGone(thread: PoolThread, err: Error): void {
    const index = this.threads.indexOf(thread);
    if (index < 0) return;
    this.threads.splice(index, 1);
    const task = thread.running;
    thread.running = null;
    task?.reject(err);
    if (!this.closed) this.dispatch();
  }

  /** Stop every thread; queued and running tasks are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error('offload pool is closed');
    for (const task of this.queue.splice(0)) task.reject(error);
    this.queuedBytes = 0;
    const threads = this.threads.splice(0);
    for (const thread of threads) {
      thread.running?.reject(error);
      thread.running = null;
    }
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }
}
