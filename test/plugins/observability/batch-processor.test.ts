import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  BatchProcessor,
  closeSharedBatchProcessors,
  droppedEntriesTotal,
  SharedBatchQueue,
  STALE_PROCESSOR_MS,
  sweepStaleBatchProcessorsAt,
  type BatchProcessorConf,
} from '../../../src/plugins/lib/batch-processor';
import { RecordingLogger } from '../support/test-context';

const conf = (overrides: Partial<BatchProcessorConf> = {}): BatchProcessorConf => ({
  batch_max_size: 1000,
  inactive_timeout: 5,
  buffer_duration: 60,
  max_retry_count: 0,
  retry_delay: 0,
  ...overrides,
});

describe('batch processor', () => {
  it('sends a batch as soon as it holds batch_max_size entries', async () => {
    const batches: number[][] = [];
    const processor = new BatchProcessor<number>(
      'test',
      conf({ batch_max_size: 3 }),
      async (entries) => {
        batches.push([...entries]);
      },
      new RecordingLogger(),
    );
    for (let i = 1; i <= 7; i++) processor.push(i);
    await sleep(10);
    assert.deepEqual(batches, [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    await processor.close();
    assert.deepEqual(batches[2], [7]);
    assert.deepEqual(processor.stats(), { pending: 0, sent: 7, dropped: 0, failedBatches: 0, retries: 0 });
  });

  it('sends a partial batch after inactive_timeout', async () => {
    const batches: string[][] = [];
    const processor = new BatchProcessor<string>(
      'test',
      conf({ inactive_timeout: 1 }),
      async (entries) => {
        batches.push([...entries]);
      },
      new RecordingLogger(),
    );
    processor.push('a');
    processor.push('b');
    await sleep(500);
    assert.equal(batches.length, 0);
    await sleep(800);
    assert.deepEqual(batches, [['a', 'b']]);
    await processor.close();
  });

  it('sends when the oldest entry is buffer_duration old even while entries keep coming', async () => {
    const batches: number[][] = [];
    const processor = new BatchProcessor<number>(
      'test',
      conf({ inactive_timeout: 1, buffer_duration: 1 }),
      async (entries) => {
        batches.push([...entries]);
      },
      new RecordingLogger(),
    );
    const started = Date.now();
    for (let i = 0; Date.now() - started < 1400; i++) {
      processor.push(i);
      await sleep(100);
    }
    assert.ok(batches.length >= 1, 'a batch went out while entries were still arriving');
    await processor.close();
  });

  it('retries a failed batch max_retry_count times, then drops and counts it', async () => {
    let attempts = 0;
    const log = new RecordingLogger();
    const before = droppedEntriesTotal();
    const processor = new BatchProcessor<number>(
      'failing',
      conf({ batch_max_size: 2, max_retry_count: 2, retry_delay: 0 }),
      async () => {
        attempts++;
        throw new Error('log server down');
      },
      log,
    );
    processor.push(1);
    processor.push(2);
    await processor.flush();
    assert.equal(attempts, 3);
    assert.deepEqual(processor.stats(), { pending: 0, sent: 0, dropped: 2, failedBatches: 1, retries: 2 });
    assert.equal(droppedEntriesTotal() - before, 2);
    assert.ok(
      log.records.some(
        (record) =>
          record.level === 'error' &&
          record.message === 'Batch Processor[failing] exceeded the max_retry_count[2] dropping the entries',
      ),
    );
  });

  it('succeeds on a retry', async () => {
    let attempts = 0;
    const processor = new BatchProcessor<number>(
      'flaky',
      conf({ max_retry_count: 1 }),
      async () => {
        attempts++;
        if (attempts === 1) throw new Error('once');
      },
      new RecordingLogger(),
    );
    processor.push(1);
    await processor.close();
    assert.equal(processor.stats().sent, 1);
    assert.equal(processor.stats().retries, 1);
  });

  it('bounds the queue: entries past maxPendingEntries are dropped and counted', async () => {
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const log = new RecordingLogger();
    const processor = new BatchProcessor<number>('slow', conf({ batch_max_size: 2 }), () => blocked, log, {
      maxPendingEntries: 5,
    });
    const accepted = [1, 2, 3, 4, 5, 6, 7, 8].map((entry) => processor.push(entry));
    assert.deepEqual(accepted, [true, true, true, true, true, false, false, false]);
    assert.equal(processor.stats().dropped, 3);
    assert.equal(processor.stats().pending, 5);
    assert.equal(log.records.filter((record) => record.level === 'warn').length, 1, 'one warning per second at most');
    release();
    await processor.close();
    assert.equal(processor.stats().sent, 5);
    assert.equal(processor.push(9), false, 'a closed processor takes nothing');
  });
});

describe('batch processor byte bound', () => {
  it('entries whose weight would pass maxPendingBytes are dropped; weightless ones still pass', async () => {
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const processor = new BatchProcessor<string>(
      'heavy',
      conf({ batch_max_size: 2 }),
      () => blocked,
      new RecordingLogger(),
      {
        weigh: (entry) => entry.length,
        maxPendingBytes: 10,
      },
    );
    // 4 + 4 ship as a batch (in flight, still counted), 2 fits, 4 more does not, an empty one weighs nothing.
    const accepted = ['aaaa', 'bbbb', 'cc', 'dddd', ''].map((entry) => processor.push(entry));
    assert.deepEqual(accepted, [true, true, true, false, true]);
    assert.equal(processor.stats().dropped, 1);
    release();
    await processor.flush();
    assert.equal(processor.push('eeeeeeee'), true, 'sent batches no longer count');
    await processor.close();
    assert.equal(processor.stats().sent, 5);
  });
});

describe('shared batch queues', () => {
  it('equal configurations share one processor and target; a stale one is closed and reopened on use', async () => {
    let opened = 0;
    let closed = 0;
    const sent: number[] = [];
    const open = () => {
      opened++;
      return {
        send: async (entries: readonly number[]) => {
          sent.push(...entries);
        },
        close: async () => {
          closed++;
        },
      };
    };
    const first = new SharedBatchQueue<number>('test-shared', conf({ batch_max_size: 2 }), open, new RecordingLogger());
    const second = new SharedBatchQueue<number>(
      'test-shared',
      conf({ batch_max_size: 2 }),
      open,
      new RecordingLogger(),
    );
    const other = new SharedBatchQueue<number>('test-shared', conf({ batch_max_size: 3 }), open, new RecordingLogger());
    assert.equal(opened, 2);
    assert.equal(first.processor(), second.processor());
    assert.notEqual(first.processor(), other.processor());
    first.push(1);
    second.push(2);
    await first.flush();
    assert.deepEqual(sent, [1, 2]);

    sweepStaleBatchProcessorsAt(Date.now());
    assert.equal(closed, 0, 'recently used processors stay');
    sweepStaleBatchProcessorsAt(Date.now() + STALE_PROCESSOR_MS + 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, 2);
    assert.equal(first.push(3), true, 'the next push opens it again');
    assert.equal(opened, 3);
    await closeSharedBatchProcessors();
    assert.deepEqual(sent, [1, 2, 3]);
  });
});
