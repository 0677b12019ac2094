// APISIX's batch processor, shared by the loggers: entries are buffered and
// sent in batches of `batch_max_size`, or when no entry arrived for
// `inactive_timeout` seconds, or when the oldest buffered entry is
// `buffer_duration` seconds old. A failed batch is retried `max_retry_count`
// times, `retry_delay` seconds apart, then dropped. The queue is bounded:
// past `maxPendingEntries` (buffered plus being sent), or past
// `maxPendingBytes` of what `weigh` counts (the bodies loggers capture), new
// entries are dropped and counted, so a slow log server costs memory up to a
// limit and nothing else.
//
//   const batches = new SharedBatchQueue('http-logger', conf, () => ({ send: (entries) => post(entries) }), log);
//   batches.push(entry); // in the log phase: O(1), no timer created per entry
//
// SharedBatchQueue shares one processor among equal configurations across
// config versions; BatchProcessor is the queue itself.

import type { Logger } from '../../core/log';
import type { JsonSchema } from '../types';

/** The batch fields every logger's configuration has (APISIX's names and defaults). */
export interface BatchProcessorConf {
  readonly name?: string;
  readonly batch_max_size: number;
  readonly inactive_timeout: number;
  readonly buffer_duration: number;
  readonly max_retry_count: number;
  readonly retry_delay: number;
}

/** Schema properties of the batch fields, to spread into a logger's schema. */
export const batchProcessorSchemaProperties: Readonly<Record<string, JsonSchema>> = {
  name: { type: 'string' },
  batch_max_size: { type: 'integer', minimum: 1, default: 1000 },
  inactive_timeout: { type: 'integer', minimum: 1, default: 5 },
  buffer_duration: { type: 'integer', minimum: 1, default: 60 },
  max_retry_count: { type: 'integer', minimum: 0, default: 0 },
  retry_delay: { type: 'integer', minimum: 0, default: 1 },
};

/** APISIX's default for `max_pending_entries` (plugin_attr of each logger). */
export const DEFAULT_MAX_PENDING_ENTRIES = 8192;
/**
 * Weighed bytes (options.weigh) buffered plus being sent before new entries are dropped. APISIX has no
 * such bound; without it 8192 entries of 512 KiB bodies could hold 4 GiB.
 */
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** Sends one batch; a rejection means the batch failed and is retried. */
export type BatchSender<E> = (entries: readonly E[]) => Promise<void>;

export interface BatchProcessorStats {
  /** Entries buffered or being sent. */
  pending: number;
  /** Entries in batches that were sent successfully. */
  sent: number;
  /** Entries dropped: the queue was full, or their batch failed every retry. */
  dropped: number;
  /** Batches dropped after their last retry. */
  failedBatches: number;
  /** Retries made. */
  retries: number;
}

export interface BatchProcessorOptions<E = unknown> {
  /** Entries buffered plus being sent before new ones are dropped; default 8192. */
  maxPendingEntries?: number;
  /** The bytes an entry holds that count against maxPendingBytes (loggers: captured bodies); none without it. */
  weigh?: (entry: E) => number;
  /** Weighed bytes buffered plus being sent before new entries are dropped; default 64 MiB. */
  maxPendingBytes?: number;
}

let droppedInProcess = 0;

/** Entries dropped by every batch processor of this process since it started (closed ones included). */
export function droppedEntriesTotal(): number {
  return droppedInProcess;
}

// A pending retry is work in progress: its timer keeps the process alive (bounded by the retry settings).
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class BatchProcessor<E> {
  readonly name: string;
  readonly #conf: BatchProcessorConf;
  readonly #send: BatchSender<E>;
  readonly #log: Logger;
  readonly #maxPending: number;
  readonly #weigh: ((entry: E) => number) | undefined;
  readonly #maxPendingBytes: number;

  #buffer: E[] = [];
  #firstEntryAt = 0;
  #lastEntryAt = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #inFlight = new Set<Promise<void>>();
  #inFlightEntries = 0;
  /** Weighed bytes of the buffered entries, and of those being sent. */
  #bufferBytes = 0;
  #inFlightBytes = 0;
  #closed = false;
  #lastDropWarning = 0;
  readonly #stats: BatchProcessorStats = { pending: 0, sent: 0, dropped: 0, failedBatches: 0, retries: 0 };

  constructor(
    name: string,
    conf: BatchProcessorConf,
    send: BatchSender<E>,
    log: Logger,
    options: BatchProcessorOptions<E> = {},
  ) {
    this.name = conf.name ?? name;
    this.#conf = conf;
    this.#send = send;
    this.#log = log;
    this.#maxPending = options.maxPendingEntries ?? DEFAULT_MAX_PENDING_ENTRIES;
    this.#weigh = options.weigh;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
  }

  /** Queue an entry; false when it was dropped (queue full, or the processor is closed). */
  push(entry: E): boolean {
    if (this.#closed || this.#buffer.length + this.#inFlightEntries >= this.#maxPending) {
      this.#drop(1, this.#closed ? 'the batch processor is closed' : 'max pending entries limit exceeded');
      return false;
    }
    const weight = this.#weigh === undefined ? 0 : this.#weigh(entry);
    if (weight > 0 && this.#bufferBytes + this.#inFlightBytes + weight > this.#maxPendingBytes) {
      this.#drop(1, 'max pending bytes limit exceeded');
      return false;
    }
    this.#bufferBytes += weight;
    const now = Date.now();
    if (this.#buffer.length === 0) this.#firstEntryAt = now;
    this.#lastEntryAt = now;
    this.#buffer.push(entry);
    if (this.#buffer.length >= this.#conf.batch_max_size) {
      this.#ship();
    } else if (this.#timer === undefined) {
      // One timer per batch, re-armed when it fires, instead of one per entry.
      this.#arm(this.#conf.inactive_timeout * 1000);
    }
    return true;
  }

  /** Send what is buffered now and wait for every batch being sent (retries included). */
  async flush(): Promise<void> {
    if (this.#buffer.length > 0) this.#ship();
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Stop taking entries, send what is buffered and wait for it. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /** When the last entry was pushed (ms since the epoch; the creation time before the first). */
  get lastEntryAt(): number {
    return this.#lastEntryAt;
  }

  stats(): BatchProcessorStats {
    return { ...this.#stats, pending: this.#buffer.length + this.#inFlightEntries };
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, delayMs));
    this.#timer.unref();
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#buffer.length === 0) return;
    const now = Date.now();
    const inactiveAt = this.#lastEntryAt + this.#conf.inactive_timeout * 1000;
    const tooOldAt = this.#firstEntryAt + this.#conf.buffer_duration * 1000;
    if (now >= inactiveAt || now >= tooOldAt) {
      this.#ship();
    } else {
      this.#arm(Math.min(inactiveAt, tooOldAt) - now);
    }
  }

  #ship(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#buffer;
    const batchBytes = this.#bufferBytes;
    this.#buffer = [];
    this.#bufferBytes = 0;
    this.#inFlightEntries += batch.length;
    this.#inFlightBytes += batchBytes;
    const sending = this.#sendWithRetries(batch).finally(() => {
      this.#inFlightEntries -= batch.length;
      this.#inFlightBytes -= batchBytes;
      this.#inFlight.delete(sending);
    });
    this.#inFlight.add(sending);
  }

  async #sendWithRetries(batch: E[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#send(batch);
        this.#stats.sent += batch.length;
        return;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        if (attempt >= this.#conf.max_retry_count) {
          this.#stats.failedBatches++;
          this.#stats.dropped += batch.length;
          droppedInProcess += batch.length;
          this.#log.error(
            `Batch Processor[${this.name}] exceeded the max_retry_count[${this.#conf.max_retry_count}] ` +
              `dropping the entries`,
            { entries: batch.length, error: reason },
          );
          return;
        }
        this.#stats.retries++;
        this.#log.warn(`Batch Processor[${this.name}] failed to process entries, retrying`, {
          attempt: attempt + 1,
          error: reason,
        });
        await sleep(this.#conf.retry_delay * 1000);
      }
    }
  }

  #drop(count: number, reason: string): void {
    this.#stats.dropped += count;
    droppedInProcess += count;
    const now = Date.now();
    // A full queue drops on every request: warn at most once a second.
    if (now - this.#lastDropWarning >= 1000) {
      this.#lastDropWarning = now;
      this.#log.warn(`Batch Processor[${this.name}] ${reason}. discarding entries`, {
        dropped: count,
        droppedTotal: this.#stats.dropped,
      });
    }
  }
}

/** What a logger opens for one configuration: the sender, and what to close when the processor is retired. */
export interface BatchTarget<E> {
  readonly send: BatchSender<E>;
  readonly close?: () => Promise<void>;
}

interface SharedProcessor {
  readonly processor: BatchProcessor<unknown>;
  readonly close: (() => Promise<void>) | undefined;
}

/** A shared processor with no entry for this long is closed (APISIX's stale processor check). */
export const STALE_PROCESSOR_MS = 5 * 60 * 1000;

const sharedProcessors = new Map<string, SharedProcessor>();
let staleSweeper: NodeJS.Timeout | undefined;

function sweepStaleProcessors(now: number): void {
  for (const [key, shared] of sharedProcessors) {
    if (shared.processor.stats().pending > 0 || now - shared.processor.lastEntryAt < STALE_PROCESSOR_MS) continue;
    sharedProcessors.delete(key);
    void shared.processor.close().then(() => shared.close?.());
  }
  if (sharedProcessors.size === 0 && staleSweeper !== undefined) {
    clearInterval(staleSweeper);
    staleSweeper = undefined;
  }
}

/**
 * A logger's queue for one configuration. The processor behind it is shared
 * by every compile of an equal configuration (APISIX's batch processor
 * manager): a new config version that recompiles a route keeps its logger's
 * queue, counters and connections instead of opening new ones. A processor
 * nobody pushed to for STALE_PROCESSOR_MS is closed, and opened again by the
 * next push.
 */
export class SharedBatchQueue<E> {
  readonly #key: string;
  readonly #plugin: string;
  readonly #conf: BatchProcessorConf;
  readonly #open: () => BatchTarget<E>;
  readonly #log: Logger;
  readonly #options: BatchProcessorOptions<E>;

  constructor(
    plugin: string,
    conf: BatchProcessorConf,
    open: () => BatchTarget<E>,
    log: Logger,
    options: BatchProcessorOptions<E> = {},
  ) {
    this.#key = `${plugin}\n${JSON.stringify(conf)}`;
    this.#plugin = plugin;
    this.#conf = conf;
    this.#open = open;
    this.#log = log;
    this.#options = options;
    this.processor();
  }

  /** The shared processor, opened when absent (first use, or retired as stale). */
  processor(): BatchProcessor<E> {
    const existing = sharedProcessors.get(this.#key);
    if (existing !== undefined) return existing.processor as BatchProcessor<E>;
    const target = this.#open();
    const processor = new BatchProcessor<E>(this.#plugin, this.#conf, target.send, this.#log, this.#options);
    sharedProcessors.set(this.#key, { processor: processor as BatchProcessor<unknown>, close: target.close });
    if (staleSweeper === undefined) {
      staleSweeper = setInterval(() => sweepStaleProcessors(Date.now()), 60_000);
      staleSweeper.unref();
    }
    return processor;
  }

  push(entry: E): boolean {
    return this.processor().push(entry);
  }

  flush(): Promise<void> {
    return this.processor().flush();
  }

  stats(): BatchProcessorStats {
    return this.processor().stats();
  }

  /** Retire the shared processor now (send what it holds, then close its target). */
  async close(): Promise<void> {
    const shared = sharedProcessors.get(this.#key);
    if (shared === undefined) return;
    sharedProcessors.delete(this.#key);
    await shared.processor.close();
    await shared.close?.();
  }
}

/** Close every shared processor after sending what it holds (process shutdown, tests). */
export async function closeSharedBatchProcessors(): Promise<void> {
  const all = [...sharedProcessors.values()];
  sharedProcessors.clear();
  if (staleSweeper !== undefined) clearInterval(staleSweeper);
  staleSweeper = undefined;
  await Promise.all(all.map((shared) => shared.processor.close().then(() => shared.close?.())));
}

/** For tests: run the stale check as if it were `now`. */
export function sweepStaleBatchProcessorsAt(now: number): void {
  sweepStaleProcessors(now);
}
