// Crash atomicity: a child process writes in a loop and reports each
// acknowledged write on stdout; the parent SIGKILLs it at a random moment,
// several times over the same data dir, then checks that every acknowledged
// write survived and that no item file is torn.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createEmbeddedStore } from '../../src/store/index';

const storeModule = path.join(__dirname, '../../src/store/index.js');

// Writes keys k0..k19 round-robin with an increasing sequence number, deleting
// every seventh write's key instead, and prints "put <key> <seq>" or
// "del <key> <seq>" once the store has acknowledged it.
const writerSource = `
const { createEmbeddedStore } = require(${JSON.stringify(storeModule)});
(async () => {
  const store = createEmbeddedStore(process.argv[1]);
  await store.open();
  let seq = Number(process.argv[2]);
  process.stdout.write('ready\\n');
  for (;;) {
    seq++;
    const key = 'k' + (seq % 20);
    if (seq % 7 === 0) {
      await store.delete('routes', key);
      process.stdout.write('del ' + key + ' ' + seq + '\\n');
    } else {
      await store.put('routes', key, { uri: '/' + key, seq, pad: 'x'.repeat(seq % 500) });
      process.stdout.write('put ' + key + ' ' + seq + '\\n');
    }
  }
})();
`;

interface Acked {
  /** Last acknowledged operation per key: the seq of a put, or -seq of a delete. */
  last: Map<string, number>;
  maxSeq: number;
  /** The one operation that may have completed without being reported before the kill. */
  unreportedSeq: number;
  count: number;
}

function runAndKill(dir: string, startSeq: number, acked: Acked): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', writerSource, dir, String(startSeq)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('writer did not start in time'));
    }, 10000);
    acked.unreportedSeq = startSeq + 1;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line === 'ready') {
          clearTimeout(guard);
          setTimeout(() => child.kill('SIGKILL'), 30 + Math.floor(Math.random() * 250));
          continue;
        }
        const [op, key, seqText] = line.split(' ');
        const seq = Number(seqText);
        acked.last.set(key, op === 'put' ? seq : -seq);
        acked.maxSeq = Math.max(acked.maxSeq, seq);
        acked.unreportedSeq = seq + 1;
        acked.count++;
      }
    });
    child.on('exit', () => {
      clearTimeout(guard);
      resolve();
    });
    child.on('error', reject);
  });
}

describe('embedded store crash atomicity', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'palisade-crash-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every acknowledged write across repeated SIGKILLs, with no torn files', { timeout: 60000 }, async () => {
    const acked: Acked = { last: new Map(), maxSeq: 0, unreportedSeq: 0, count: 0 };
    for (let round = 0; round < 6; round++) {
      // Leave room above the last acknowledged seq for writes done but not yet reported.
      await runAndKill(dir, acked.maxSeq + 1000, acked);

      for (const name of readdirSync(path.join(dir, 'routes'))) {
        if (name.startsWith('.tmp-')) continue;
        const text = readFileSync(path.join(dir, 'routes', name), 'utf8');
        assert.doesNotThrow(() => JSON.parse(text), `torn file ${name} after round ${round}`);
      }

      const store = createEmbeddedStore(dir);
      await store.open();
      try {
        for (const [key, last] of acked.last) {
          const item = store.get('routes', key);
          const seq = item?.value.seq as number | undefined;
          if (last > 0) {
            // The acknowledged put, or a later write that finished but was not yet reported.
            if (item) assert.ok(seq !== undefined && seq >= last, `${key}: stored seq ${seq} < acknowledged ${last}`);
            else {
              // Only an unreported delete of this very key may have removed it.
              const next = acked.unreportedSeq;
              assert.ok(next % 7 === 0 && `k${next % 20}` === key, `${key}: acknowledged put ${last} is missing`);
            }
          } else if (item) {
            assert.ok(seq !== undefined && seq > -last, `${key}: deleted at ${-last} but holds older seq ${seq}`);
          }
        }
        const revision = store.snapshot().version;
        for (const item of store.list('routes')) assert.ok(item.modifiedIndex <= revision);
      } finally {
        await store.close();
      }
    }
    assert.ok(acked.last.size > 0, 'the writer acknowledged some writes');
    console.log(`# crash test: ${acked.count} acknowledged operations across 6 kills`);
  });
});
