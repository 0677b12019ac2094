// A thread of the offload pool (offload.ts): loads plugin modules by path,
// runs the task a message names and posts the result back. Buffers in the
// result move to the main thread instead of being copied when they own their
// whole ArrayBuffer.

import { parentPort } from 'node:worker_threads';
import type { PluginModule } from './types';

/** A task request from the pool. */
export interface OffloadRequest {
  readonly id: number;
  readonly source: string;
  readonly task: string;
  readonly payload: unknown;
}

/** The answer: `error` set when the task threw (or could not be found). */
export interface OffloadResponse {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

type Task = (payload: unknown) => unknown;

const tasksBySource = new Map<string, Readonly<Record<string, Task>>>();

function tasksOf(source: string): Readonly<Record<string, Task>> {
  let tasks = tasksBySource.get(source);
  if (tasks === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(source) as { default?: PluginModule } & Partial<PluginModule>;
    tasks = (loaded.default ?? loaded).tasks ?? {};
    tasksBySource.set(source, tasks);
  }
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
  if (ArrayBuffer.isView(result) && result.buffer instanceof ArrayBuffer) {
    if (result.byteOffset === 0 && result.byteLength === result.buffer.byteLength) return [result.buffer];
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

parentPort?.on('message', (message: OffloadRequest) => void run(message));
