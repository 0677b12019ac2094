// APISIX's batch processor, shared by the loggers: entries are buffered and
// sent in batches of `batch_max_size`, or when no entry arrived for
// `inactive_timeout` seconds, or when the oldest buffered entry is
// `buffer_duration` seconds old. A failed batch is retried `max_retry_count`
// times, `retry_delay` seconds apart, then dropped. The queue is bounded:
// past `maxPendingEntries` (buffered plus being sent) new entries are dropped
// and counted, so a slow log server costs memory up to a limit and nothing else.
//
//   const batches = new BatchProcessor('http-logger', conf, (entries) => post(entries), log);
//   batches.push(entry); // in the log phase: O(1), no timer created per entry
//   await batches.close(); // when the config version is retired

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

export interface BatchProcessorOptions {
  /** Entries buffered plus being sent before new ones are dropped; default 8192. */
  maxPendingEntries?: number;
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

  #buffer: E[] = [];
  #firstEntryAt = 0;
  #lastEntryAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = new Set<Promise<void>>();
  #inFlightEntries = 0;
  #closed = false;
  #lastDropWarning = 0;
  readonly #stats: BatchProcessorStats = { pending: 0, sent: 0, dropped: 0, failedBatches: 0, retries: 0 };

  constructor(
    name: string,
    conf: BatchProcessorConf,
    send: BatchSender<E>,
    log: Logger,
    options: BatchProcessorOptions = {},
  ) {
    this.name = conf.name ?? name;
    this.#conf = conf;
    this.#send = send;
    this.#log = log;
    this.#maxPending = options.maxPendingEntries ?? DEFAULT_MAX_PENDING_ENTRIES;
  }

  /** Queue an entry; false when it was dropped (queue full, or the processor is closed). */
  push(entry: E): boolean {
    if (this.#closed || this.#buffer.length + this.#inFlightEntries >= this.#maxPending) {
      this.#drop(1, this.#closed ? 'the batch processor is closed' : 'max pending entries limit exceeded');
      return false;
    }
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
    this.#buffer = [];
    this.#inFlightEntries += batch.length;
    const sending = this.#sendWithRetries(batch).finally(() => {
      this.#inFlightEntries -= batch.length;
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
