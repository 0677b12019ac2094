// The offload pool: worker threads that run CPU-heavy plugin tasks (gzip of a
// large body, signature checks over big payloads) off the event loop that
// proxies requests. A task is named by the plugin module's path (`source`, set
// by the loader) and a task name; its payload and result cross threads by
// structured clone, with the ArrayBuffers listed in `transfer` moved instead
// of copied. Threads start on the first task, so a gateway whose plugins
// never offload runs none.

import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { logger } from '../core/log';
import type { OffloadRequest, OffloadResponse } from './offload-worker';

export interface OffloadPoolOptions {
  /** Worker threads; default min(2, cores). */
  size?: number;
  /** Tasks waiting for a thread past which new ones are refused; default 1024. */
  maxQueue?: number;
}

interface PendingTask {
  readonly message: OffloadRequest;
  readonly transfer: readonly ArrayBuffer[];
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
const log = logger('offload');

/** Results arrive as Uint8Array after structured clone: hand back a Buffer view (no copy). */
function asBuffer(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  return value;
}

export class OffloadPool {
  readonly size: number;
  readonly maxQueue: number;
  private readonly threads: PoolThread[] = [];
  private readonly queue: PendingTask[] = [];
  private nextId = 1;
  private closed = false;

  constructor(options: OffloadPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? Math.min(2, os.availableParallelism()));
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
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

  /**
   * Run `task` of the plugin module at `source` with `payload`. The ArrayBuffers
   * in `transfer` are detached here and belong to the worker from now on.
   */
  run<T>(source: string, task: string, payload: unknown, transfer: readonly ArrayBuffer[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new Error('offload pool is closed'));
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new Error(`offload queue is full (${this.maxQueue} tasks waiting)`));
    }
    return new Promise<T>((resolve, reject) => {
      const message: OffloadRequest = { id: this.nextId++, source, task, payload };
      this.queue.push({ message, transfer, resolve: resolve as (value: unknown) => void, reject });
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

  private startThread(): PoolThread {
    const worker = new Worker(WORKER_FILE);
    const thread: PoolThread = { worker, running: null };
    worker.unref(); // an idle pool never keeps the process alive
    worker.on('message', (response: OffloadResponse) => {
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
    const threads = this.threads.splice(0);
    for (const thread of threads) {
      thread.running?.reject(error);
      thread.running = null;
    }
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }
}
