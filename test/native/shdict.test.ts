// The shared dictionary on every backend: each operation, TTLs, LRU eviction,
// value sizes, key limits, reopening, and (native backends) several processes
// incrementing one key and a process killed while it holds the lock. The `js`
// backend is per process, so its "concurrent" increments run in one process.
//
// This file is also its own child process: with PALISADE_SHDICT_CHILD set it
// runs one child job (see runChild) instead of registering tests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { loadBackend } from '../../src/native';
import type { BackendName, NativeBackend } from '../../src/native';
import { SHDICT_MAX_KEY, SHDICT_OUT_SIZE, ShdictStatus } from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';
import { openSharedDict, parseDictSize, SharedDict, sharedDictPath } from '../../src/native/shdict';
import { seededRandom } from '../helpers/random';

const BACKENDS: readonly BackendName[] = ['ffi', 'napi', 'js'];
const BUILD_FILES: Record<BackendName, string | undefined> = { ffi: sharedLibraryPath, napi: addonPath, js: undefined };
const CHILD_ENV = 'PALISADE_SHDICT_CHILD';

const PROCESSES = 4;
const INCREMENTS = 25_000;

interface ChildJob {
  backend: BackendName;
  file: string;
  /** 'incr': wait for key "go", then incr "hits" `count` times. 'hold': take the lock and never release it. */
  job: 'incr' | 'hold';
  count?: number;
  dirty?: boolean;
}

function missingBuild(name: BackendName): string | false {
  const file = BUILD_FILES[name];
  return file !== undefined && !existsSync(file) ? `${file} is missing; run npm run build:native` : false;
}

function bytesOf(value: Buffer | number | undefined): Buffer {
  assert.ok(Buffer.isBuffer(value), `expected a Buffer, got ${value}`);
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function runChild(job: ChildJob): void {
  const backend = loadBackend(job.backend);
  const dict = openSharedDict(backend, 'child', 0, { path: job.file });
  if (job.job === 'hold') {
    // Prints "locked\n" on stdout (fd 1) once it holds the lock, then waits to be killed.
    backend.shdictDebugHoldLock(0, -1, job.dirty === true ? 1 : 0, 1);
    return;
  }
  process.stdout.write('ready\n', () => {
    while (dict.get('go') === undefined) {
      // spin: all children start incrementing at the same moment
    }
    for (let i = 0; i < (job.count ?? 0); i++) dict.incr('hits', 1, 0);
    dict.close();
  });
}

interface RunningChild {
  /** Resolves on the first stdout line equal to `line`. */
  waitFor(line: string): Promise<void>;
  exited: Promise<number | string | null>;
  kill(): void;
}

function startChild(job: ChildJob): RunningChild {
  const child = spawn(process.execPath, [__filename], {
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(job) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  const waiters: { line: string; resolve: () => void }[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    for (const waiter of [...waiters]) {
      if (text.split('\n').includes(waiter.line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  return {
    waitFor: (line) =>
      new Promise<void>((resolve, reject) => {
        if (text.split('\n').includes(line)) return resolve();
        waiters.push({ line, resolve });
        void exited.then((how) => reject(new Error(`child exited (${how}) before printing "${line}"`)));
      }),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * Run 20,000 seeded calls and record every status and output. The dictionary
 * (16 MiB) never fills: C's buddy blocks can fragment where the js mirror only
 * sums sizes, so eviction is compared with same-size entries (the LRU test), not
 * here. Large values (up to 600 KB) go to ten keys only. TTLs are 0 or an hour, so
 * the clock never decides a result; a remaining TTL is recorded as "set or not".
 */
function randomTrace(backend: NativeBackend, file: string): unknown[] {
  const next = seededRandom(20240601);
  const pick = (n: number) => Math.floor(next() * n);
  const dict = backend.shdictOpen(Buffer.from(file), 16 << 20, 1);
  assert.ok(dict >= 0, `open returned ${dict}`);
  const out = new Float64Array(SHDICT_OUT_SIZE);
  const value = Buffer.alloc(700_000);
  const trace: unknown[] = [];
  for (let step = 0; step < 20_000; step++) {
    const keyNumber = pick(300);
    const key = Buffer.from(`key-${keyNumber}`);
    const ttl = pick(4) === 0 ? 3_600_000 : 0;
    const size = keyNumber < 10 && pick(5) === 0 ? pick(600_000) : pick(300);
    out.fill(-1);
    let status: number;
    switch (pick(8)) {
      case 0:
      case 1:
        value.fill(step & 255, 0, size);
        status = backend.shdictStore(dict, pick(3), key, key.length, value, size, ttl, step);
        break;
      case 2:
        status = backend.shdictStoreNumber(dict, pick(3), key, key.length, step / 4, ttl, 0);
        break;
      case 3:
        status = backend.shdictIncr(dict, key, key.length, pick(5) - 2, pick(100), ttl, pick(2), out);
        out[3] = out[3] > 0 ? 1 : out[3]; // the remaining TTL depends on timing
        break;
      case 4: {
        status = backend.shdictGet(dict, key, key.length, value, out);
        const length = out[1];
        trace.push(status === ShdictStatus.Ok && out[0] === 1 ? value.toString('base64', 0, length) : null);
        out[3] = out[3] > 0 ? 1 : out[3];
        break;
      }
      case 5:
        status = backend.shdictDelete(dict, key, key.length);
        break;
      case 6:
        status = backend.shdictExpire(dict, key, key.length, ttl);
        break;
      default:
        status = backend.shdictTtl(dict, key, key.length, out);
        out[3] = out[3] > 0 ? 1 : out[3];
    }
    trace.push(status, Array.from(out));
    if (step % 1000 === 0) {
      backend.shdictStats(dict, out);
      trace.push(Array.from(out));
    }
  }
  backend.shdictStats(dict, out);
  trace.push(Array.from(out));
  backend.shdictClose(dict);
  return trace;
}

function registerTests(): void {
  let directory = '';
  before(() => {
    directory = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'palisade-shdict-test-'));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  let files = 0;
  const nextFile = () => path.join(directory, `dict-${files++}`);

  for (const name of BACKENDS) {
    describe(`shared dict on ${name}`, { skip: missingBuild(name) }, () => {
      let backend: NativeBackend;
      const open = (capacity = 1 << 20, file = nextFile()): SharedDict =>
        openSharedDict(backend, 'test', capacity, { path: file, fresh: true });
      before(() => {
        backend = loadBackend(name);
      });

      it('sets and gets strings, Buffers and numbers with flags', () => {
        const dict = open();
        try {
          dict.set('text', 'héllo', 0, 7);
          dict.set(Buffer.from('bytes'), Buffer.from([0, 1, 2, 255]));
          dict.set('number', 1.5);
          dict.set('empty', '');
          assert.equal(dict.get('text'), 'héllo');
          assert.deepEqual(dict.getBuffer('bytes'), Buffer.from([0, 1, 2, 255]));
          assert.equal(dict.get('number'), 1.5);
          assert.equal(dict.get('empty'), '');
          assert.equal(dict.get('missing'), undefined);
          assert.deepEqual(dict.getEntry('text'), { value: Buffer.from('héllo'), flags: 7, ttlMs: 0 });
          assert.deepEqual(dict.getEntry('number'), { value: 1.5, flags: 0, ttlMs: 0 });
          dict.set('text', 42); // a new type replaces the old
          assert.equal(dict.get('text'), 42);
          assert.equal(dict.stats().items, 4);
        } finally {
          dict.close();
        }
      });

      it('keys alternate between strings, Buffers and long strings without mixing up their bytes', () => {
        const dict = open();
        try {
          const long = 'k'.repeat(2000); // longer than the scratch buffer: it grows
          dict.set('a', 1);
          dict.set(Buffer.from('b'), 2);
          dict.set(long, 3);
          dict.set('a', 4);
          assert.equal(dict.get('a'), 4);
          assert.equal(dict.get(Buffer.from('a')), 4);
          assert.equal(dict.get('b'), 2);
          assert.equal(dict.get(long), 3);
          assert.equal(dict.get('k'.repeat(1999)), undefined);
          assert.equal(dict.get(Buffer.from('b')), 2);
          assert.equal(dict.get('a'), 4);
        } finally {
          dict.close();
        }
      });

      it('add only when absent, replace only when present', () => {
        const dict = open();
        try {
          assert.equal(dict.add('k', 'one'), true);
          assert.equal(dict.add('k', 'two'), false);
          assert.equal(dict.get('k'), 'one');
          assert.equal(dict.replace('k', 'three'), true);
          assert.equal(dict.get('k'), 'three');
          assert.equal(dict.replace('absent', 'x'), false);
          assert.equal(dict.get('absent'), undefined);
        } finally {
          dict.close();
        }
      });

      it('incr: with and without init, negative and fractional deltas, not a number', () => {
        const dict = open();
        try {
          assert.equal(dict.incr('n'), undefined);
          assert.equal(dict.get('n'), undefined);
          assert.equal(dict.incr('n', 1, 10), 11);
          assert.equal(dict.incr('n', -3), 8);
          assert.equal(dict.incr('n', 0.5), 8.5);
          assert.equal(dict.get('n'), 8.5);
          dict.set('s', 'text');
          assert.throws(() => dict.incr('s', 1, 0), { name: 'TypeError', message: /not a number/ });
        } finally {
          dict.close();
        }
      });

      it('delete, expire and ttl', () => {
        const dict = open();
        try {
          dict.set('k', 'v');
          assert.equal(dict.ttl('k'), 0);
          assert.equal(dict.expire('k', 60_000), true);
          const ttl = dict.ttl('k') ?? -1;
          assert.ok(ttl > 59_000 && ttl <= 60_000, `ttl ${ttl}`);
          assert.equal(dict.expire('k', 0), true);
          assert.equal(dict.ttl('k'), 0);
          assert.equal(dict.expire('absent', 10), false);
          assert.equal(dict.ttl('absent'), undefined);
          assert.equal(dict.delete('k'), true);
          assert.equal(dict.delete('k'), false);
          assert.equal(dict.get('k'), undefined);
          assert.throws(() => dict.set('k', 'v', -1), RangeError);
          assert.throws(() => dict.set('k', 'v', Number.NaN), RangeError);
        } finally {
          dict.close();
        }
      });

      it('expires entries after their TTL', async () => {
        const dict = open();
        try {
          dict.set('short', 'v', 30);
          dict.set('long', 'v', 60_000);
          dict.set('forever', 'v');
          assert.equal(dict.incr('counter', 1, 0, 30), 1);
          assert.equal(dict.incr('counter', 1), 2); // keeps its TTL
          assert.ok(dict.incrTtlMs > 0 && dict.incrTtlMs <= 30, `incrTtlMs ${dict.incrTtlMs}`);
          assert.equal(dict.incr('forever-count', 1, 0), 1);
          assert.equal(dict.incrTtlMs, 0); // never expires
          dict.set('flushed', 'v', 30);
          assert.equal(dict.get('short'), 'v');
          await sleep(80);
          assert.equal(dict.get('short'), undefined);
          assert.equal(dict.get('counter'), undefined);
          assert.equal(dict.incr('counter', 1), undefined);
          assert.equal(dict.get('long'), 'v');
          assert.equal(dict.get('forever'), 'v');
          assert.equal(dict.flushExpired(), 1); // 'flushed' was never read again
          const stats = dict.stats();
          assert.equal(stats.items, 3); // long, forever, forever-count
          assert.equal(stats.expired, 3);
        } finally {
          dict.close();
        }
      });

      it('stores values of several sizes and refuses one larger than the largest entry', () => {
        const dict = open(4 << 20);
        try {
          const { maxEntry } = dict.stats();
          assert.equal(maxEntry, 1 << 20);
          const key = 'value';
          for (const size of [0, 1, 23, 24, 100, 4095, 4096, 5000, 65536, 300_000, maxEntry - 40 - key.length]) {
            const value = Buffer.alloc(size, size % 251);
            dict.set(key, value);
            assert.deepEqual(dict.getBuffer(key), value, `size ${size}`);
          }
          const tooBig = Buffer.alloc(maxEntry - 40 - key.length + 1);
          assert.throws(() => dict.set(key, tooBig), { name: 'RangeError', message: /larger than the largest/ });
          assert.equal(bytesOf(dict.getBuffer(key)).length, maxEntry - 40 - key.length); // the old value stays
        } finally {
          dict.close();
        }
      });

      it('rejects empty and too long keys with a clear error', () => {
        const dict = open(4 << 20);
        try {
          const longest = 'k'.repeat(SHDICT_MAX_KEY);
          dict.set(longest, 1);
          assert.equal(dict.get(longest), 1);
          assert.throws(() => dict.set('k'.repeat(SHDICT_MAX_KEY + 1), 1), {
            name: 'RangeError',
            message: /keys must be 1\.\.65535 bytes/,
          });
          assert.throws(() => dict.get('é'.repeat(40_000)), RangeError); // 80,000 UTF-8 bytes
          assert.throws(() => dict.get(''), /keys must be 1\.\.65535 bytes/);
          assert.throws(() => dict.incr(Buffer.alloc(0), 1, 0), RangeError);
          const out = new Float64Array(SHDICT_OUT_SIZE);
          const key = Buffer.from('abc');
          assert.equal(backend.shdictGet(0, key, 4, Buffer.alloc(8), out), ShdictStatus.Arg); // length beyond the Buffer
        } finally {
          dict.close();
        }
      });

      it('evicts least recently used entries when full', () => {
        const dict = open(64 * 1024);
        try {
          const value = Buffer.alloc(200, 1); // 40 + key + 200 bytes: one 256-byte block
          dict.set('hot', value);
          const { capacity } = dict.stats();
          const keys = Math.ceil(capacity / 256) * 3;
          for (let i = 0; i < keys; i++) {
            dict.set(`cold-${i}`, value);
            assert.ok(dict.getBuffer('hot') !== undefined, `hot evicted at ${i}`); // keeps it recently used
          }
          const stats = dict.stats();
          assert.ok(stats.evictions > 0 && stats.evictions < keys, `evictions ${stats.evictions}`);
          assert.ok(stats.used <= stats.capacity);
          assert.equal(stats.items + stats.evictions, keys + 1);
          assert.equal(stats.used, stats.items * 256);
          assert.equal(dict.get('cold-0'), undefined);
          assert.equal(bytesOf(dict.getBuffer(`cold-${keys - 1}`)).length, 200);
          dict.flushAll();
          assert.equal(dict.stats().items, 0);
          assert.equal(dict.stats().used, 0);
        } finally {
          dict.close();
        }
      });

      it('evicts expired entries before they count as evictions', async () => {
        const dict = open(64 * 1024);
        try {
          const value = Buffer.alloc(200);
          const { capacity } = dict.stats();
          const fit = Math.floor(capacity / 256);
          for (let i = 0; i < fit; i++) dict.set(`old-${i}`, value, 20);
          await sleep(50);
          for (let i = 0; i < fit; i++) dict.set(`new-${i}`, value);
          const stats = dict.stats();
          assert.equal(stats.evictions, 0);
          assert.equal(stats.expired, fit);
        } finally {
          dict.close();
        }
      });

      it('shares data between handles on the same file and refuses a different size', () => {
        const file = nextFile();
        const first = open(1 << 20, file);
        try {
          first.set('shared', 'yes');
          const second = openSharedDict(backend, 'test', 0, { path: file });
          const third = openSharedDict(backend, 'test', 1 << 20, { path: file });
          try {
            assert.equal(second.get('shared'), 'yes');
            third.incr('n', 5, 0);
            assert.equal(first.get('n'), 5);
          } finally {
            second.close();
            third.close();
          }
          assert.throws(() => openSharedDict(backend, 'test', 2 << 20, { path: file }), /match an existing file/);
          const fresh = open(2 << 20, file);
          assert.equal(fresh.get('shared'), undefined);
          fresh.close();
        } finally {
          first.close();
        }
        assert.throws(() => openSharedDict(backend, 'test', 0, { path: nextFile() }), /no such dictionary/);
        assert.throws(() => openSharedDict(backend, 'test', 1000, { path: nextFile() }), RangeError);
        assert.throws(() => first.get('shared'), /closed/);
      });

      if (name === 'js') {
        it(`${PROCESSES} interleaved counters in one process reach the exact total (js is per process)`, async () => {
          const dict = open();
          try {
            const worker = async () => {
              for (let i = 0; i < INCREMENTS; i++) {
                dict.incr('hits', 1, 0);
                if (i % 1000 === 0) await new Promise((resolve) => setImmediate(resolve));
              }
            };
            await Promise.all(Array.from({ length: PROCESSES }, worker));
            assert.equal(dict.get('hits'), PROCESSES * INCREMENTS);
          } finally {
            dict.close();
          }
        });
        return;
      }

      it(
        `${PROCESSES} processes incrementing one key concurrently reach the exact total`,
        { timeout: 60_000 },
        async () => {
          const file = nextFile();
          const dict = open(1 << 20, file);
          const children = Array.from({ length: PROCESSES }, () =>
            startChild({ backend: name, file, job: 'incr', count: INCREMENTS }),
          );
          try {
            await Promise.all(children.map((child) => child.waitFor('ready')));
            dict.set('go', 1);
            const exits = await Promise.all(children.map((child) => child.exited));
            assert.deepEqual(exits, Array(PROCESSES).fill(0));
            assert.equal(dict.get('hits'), PROCESSES * INCREMENTS);
          } finally {
            for (const child of children) child.kill();
            dict.close();
          }
        },
      );

      for (const dirty of [false, true]) {
        it(
          `recovers the lock from a process killed holding it ${dirty ? 'mid-change (empties the dict)' : 'between changes (keeps the data)'}`,
          { timeout: 30_000 },
          async () => {
            const file = nextFile();
            const dict = open(1 << 20, file);
            const child = startChild({ backend: name, file, job: 'hold', dirty });
            try {
              dict.set('kept', 'v');
              await child.waitFor('locked');
              child.kill();
              assert.equal(await child.exited, 'SIGKILL');
              assert.equal(dict.get('kept'), dirty ? undefined : 'v');
              const stats = dict.stats();
              assert.equal(stats.lockRecoveries, 1);
              assert.equal(stats.resets, dirty ? 1 : 0);
              dict.set('after', 'works');
              assert.equal(dict.get('after'), 'works');
            } finally {
              child.kill();
              dict.close();
            }
          },
        );
      }

      it('rejects a file that is not a dictionary', () => {
        const file = nextFile();
        writeFileSync(file, Buffer.alloc(8192, 0x41));
        assert.throws(() => openSharedDict(backend, 'test', 0, { path: file }), /not a shared dict/);
      });
    });
  }

  describe('shared dict: every backend gives the same results', () => {
    it('for a random sequence of low-level calls', () => {
      const backends = BACKENDS.filter((name) => missingBuild(name) === false).map((name) => loadBackend(name));
      const traces = backends.map((backend) => randomTrace(backend, path.join(directory, `diff-${backend.name}`)));
      for (let i = 1; i < traces.length; i++) {
        assert.deepEqual(traces[i], traces[0], `${backends[i].name} differs from ${backends[0].name}`);
      }
    });
  });

  describe('shared dict helpers', () => {
    it('names a file per dictionary and user', () => {
      assert.match(sharedDictPath('limit-req'), /palisade-limit-req-\d+$/);
      assert.throws(() => sharedDictPath('../etc'), RangeError);
    });

    it('parses lua_shared_dict sizes', () => {
      assert.equal(parseDictSize('10m'), 10 * 1024 * 1024);
      assert.equal(parseDictSize('512k'), 512 * 1024);
      assert.equal(parseDictSize('1G'), 1024 ** 3);
      assert.equal(parseDictSize('65536'), 65536);
      assert.equal(parseDictSize(4096), 4096);
      assert.throws(() => parseDictSize('10 megabytes'), RangeError);
    });
  });
}

const childJob = process.env[CHILD_ENV];
if (childJob !== undefined) {
  runChild(JSON.parse(childJob) as ChildJob);
} else {
  registerTests();
}
