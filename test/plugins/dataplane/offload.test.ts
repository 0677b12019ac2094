// The offload pool on its own: tasks found by module path and name, payloads
// transferred (the sender's ArrayBuffer is detached), errors as rejections,
// a queue bounded in tasks and in bytes, close() rejecting what is left,
// threads at the lowest priority, a changed plugin file loaded again, and
// plugin_attr.offload.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { OffloadPool, OffloadRefusedError, parseOffloadAttr } from '../../../src/plugins/offload';

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

  it('takes a released buffer off this thread, starting a thread for it, and keeps serving tasks', async () => {
    const fresh = new OffloadPool({ size: 1 });
    try {
      const released = new ArrayBuffer(1024 * 1024);
      fresh.release(released);
      assert.equal(released.byteLength, 0, 'detached here: its memory is the thread’s to free');
      assert.equal(fresh.started, 1);
      fresh.release(released); // already detached: nothing to do
      const running = fresh.run<Buffer>(FIXTURE, 'upper', 'after');
      const whileBusy = new ArrayBuffer(64 * 1024);
      fresh.release(whileBusy); // the only thread is busy: the buffer waits in its queue
      assert.equal(whileBusy.byteLength, 0);
      assert.equal(String(await running), 'AFTER');
      assert.equal(String(await fresh.run(FIXTURE, 'upper', 'next')), 'NEXT');
    } finally {
      await fresh.close();
    }
    const kept = new ArrayBuffer(16);
    fresh.release(kept); // closed: the buffer stays with the caller
    assert.equal(kept.byteLength, 16);
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

  it('refuses a task past the byte bound and leaves its payload with the caller', async () => {
    const small = new OffloadPool({ size: 1, maxQueuedBytes: 1024 });
    try {
      const first = small.run(FIXTURE, 'upper', 'runs at once'); // takes the thread: not counted as waiting
      const waiting = Buffer.allocUnsafeSlow(1000);
      const queued = small.run(FIXTURE, 'upper', 'queued', [waiting.buffer as ArrayBuffer]);
      const refusedPayload = Buffer.allocUnsafeSlow(100);
      const refused = small.run(FIXTURE, 'upper', 'refused', [refusedPayload.buffer as ArrayBuffer]);
      await assert.rejects(
        refused,
        (err: unknown) => err instanceof OffloadRefusedError && /bytes waiting/.test(err.message),
      );
      assert.equal(refusedPayload.length, 100, 'a refused payload is not detached');
      assert.equal(String(await first), 'RUNS AT ONCE');
      assert.equal(String(await queued), 'QUEUED');
    } finally {
      await small.close();
    }
  });
});

describe('offload pool threads', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-offload-'));
  const pools: OffloadPool[] = [];
  const newPool = (options: ConstructorParameters<typeof OffloadPool>[0]): OffloadPool => {
    const pool = new OffloadPool(options);
    pools.push(pool);
    return pool;
  };
  after(async () => {
    await Promise.all(pools.map((pool) => pool.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const writePlugin = (file: string, tasks: string): string => {
    const target = path.join(dir, file);
    fs.writeFileSync(
      target,
      `module.exports = { name: 'probe', version: '0.1', priority: 1, schema: { type: 'object' }, tasks: { ${tasks} } };\n`,
    );
    return target;
  };

  it(
    'run at nice 19 on Linux while the calling thread keeps its priority',
    { skip: process.platform !== 'linux' },
    async () => {
      const source = writePlugin('priority.js', "priority: () => require('node:os').getPriority(0)");
      const before = os.getPriority(0);
      assert.equal(await newPool({ size: 1 }).run<number>(source, 'priority', null), 19);
      // 5, or the inherited niceness when lowering it needs a privilege this process lacks.
      const five = await newPool({ size: 1, nice: 5 }).run<number>(source, 'priority', null);
      assert.ok(five === 5 || five === before, `nice ${five}`);
      assert.equal(os.getPriority(0), before, 'setPriority in a pool thread leaves the main thread alone');
    },
  );

  it('run the new code of a plugin file changed on disk (plugin reload), helpers included', async () => {
    const helper = path.join(dir, 'reloaded-helper.js');
    fs.writeFileSync(helper, "module.exports = 'helper v1';\n");
    const source = writePlugin('reloaded.js', "stamp: () => 'v1 ' + require('./reloaded-helper')");
    const pool = newPool({ size: 2 });
    // Both threads load v1.
    assert.deepEqual(
      (await Promise.all([pool.run(source, 'stamp', null), pool.run(source, 'stamp', null)])).map(String),
      ['v1 helper v1', 'v1 helper v1'],
    );
    assert.equal(pool.started, 2);
    fs.writeFileSync(helper, "module.exports = 'helper v2';\n");
    writePlugin('reloaded.js', "stamp: () => 'v2 ' + require('./reloaded-helper')");
    // Two at once, so each thread gets one.
    assert.deepEqual(
      (await Promise.all([pool.run(source, 'stamp', null), pool.run(source, 'stamp', null)])).map(String),
      ['v2 helper v2', 'v2 helper v2'],
    );
    // A file that is gone keeps its last loaded code (requests that started before the plugin was removed).
    fs.rmSync(source);
    assert.equal(String(await pool.run(source, 'stamp', null)), 'v2 helper v2');
  });
});

describe('plugin_attr.offload', () => {
  it('maps config keys to pool options and rejects bad values with their path', () => {
    assert.deepEqual(parseOffloadAttr(undefined), {});
    assert.deepEqual(parseOffloadAttr({ threads: 1, max_queue: 16, max_queued_bytes: 8388608, nice: 10 }), {
      size: 1,
      maxQueue: 16,
      maxQueuedBytes: 8388608,
      nice: 10,
    });
    assert.throws(() => parseOffloadAttr({ threads: 0 }), /plugin_attr\.offload\.threads: must be an integer from 1/);
    assert.throws(() => parseOffloadAttr({ nice: 20 }), /plugin_attr\.offload\.nice/);
    assert.throws(() => parseOffloadAttr({ size: 2 }), /plugin_attr\.offload\.size: unknown key/);
    assert.throws(() => parseOffloadAttr([]), /must be a mapping/);
  });
});
