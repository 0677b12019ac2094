// The offload pool on its own: tasks found by module path and name, payloads
// transferred (the sender's ArrayBuffer is detached), errors as rejections,
// a bounded queue, and close() rejecting what is left.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { OffloadPool } from '../../../src/plugins/offload';

const FIXTURE = path.join(__dirname, 'fixtures', 'offload-plugin.js');

describe('offload pool', () => {
  const pool = new OffloadPool({ size: 2, maxQueue: 4 });
  after(() => pool.close());

  it('runs a task on a thread with a 1 MiB payload transferred, not copied, and the result moved back', async () => {
    const payload = Buffer.allocUnsafeSlow(1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const expected = Buffer.from(payload).reverse();
    const arrayBuffer = payload.buffer as ArrayBuffer;
    const result = await pool.run<Buffer>(FIXTURE, 'reverse', payload, [arrayBuffer]);
    assert.equal(arrayBuffer.byteLength, 0, 'the payload left this thread');
    assert.ok(Buffer.isBuffer(result));
    assert.equal(result.length, 1024 * 1024);
    assert.ok(result.equals(expected));
  });

  it('rejects with the task error and keeps serving', async () => {
    await assert.rejects(pool.run(FIXTURE, 'fail', null), /task failed on purpose/);
    await assert.rejects(pool.run(FIXTURE, 'missing', null), /no offload task "missing"/);
    const upper = await pool.run<Buffer>(FIXTURE, 'upper', 'abc');
    assert.equal(upper.toString(), 'ABC');
  });

  it('refuses tasks past the queue bound', async () => {
    const running = [];
    for (let i = 0; i < 6; i++) running.push(pool.run(FIXTURE, 'upper', `x${i}`)); // 2 on threads, 4 queued
    await assert.rejects(pool.run(FIXTURE, 'upper', 'one too many'), /offload queue is full/);
    const results = await Promise.all(running);
    assert.deepEqual(
      results.map((result) => String(result)),
      ['X0', 'X1', 'X2', 'X3', 'X4', 'X5'],
    );
  });

  it('rejects what is queued when closed', async () => {
    const closing = new OffloadPool({ size: 1 });
    const first = assert.rejects(closing.run(FIXTURE, 'upper', 'a'), /closed/);
    const second = assert.rejects(closing.run(FIXTURE, 'upper', 'b'), /closed/);
    await closing.close();
    await first;
    await second;
    await assert.rejects(closing.run(FIXTURE, 'upper', 'c'), /closed/);
  });
});
