// A child killed a moment ago still looks connected until the primary sees its exit;
// a message written then fails with EPIPE. That must be logged, not thrown: an
// unhandled 'error' event in the primary takes every worker down.

import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { forkChild, sendToChild } from '../../src/gateway/children';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-children-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Wait, without yielding to the event loop, until the process is a zombie: its IPC pipe is closed. */
function waitForZombie(pid: number): void {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
  }
  assert.fail(`process ${pid} did not die`);
}

test('a message to a child killed a moment ago is logged, not thrown', async () => {
  const script = path.join(dir, 'child.js');
  fs.writeFileSync(script, 'setInterval(() => {}, 1000);\n');
  cluster.setupPrimary({ exec: script, silent: true });
  const worker = forkChild();
  await once(worker, 'online');

  process.kill(worker.process.pid!, 'SIGKILL');
  waitForZombie(worker.process.pid!);
  assert.equal(worker.isConnected(), true, 'the exit has not been seen yet');
  sendToChild(worker, { type: 'config' });

  // The failed write is reported a tick later; an unhandled 'error' event would fail this test.
  await once(worker, 'exit');
  assert.equal(worker.isConnected(), false);
  sendToChild(worker, { type: 'config' });
});
