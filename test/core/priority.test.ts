import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { SCHED_IDLE, SCHED_OTHER, processPolicies } from '../helpers/sched';

const linux = { skip: process.platform !== 'linux' };
const PRIORITY_MODULE = path.resolve(__dirname, '../../src/core/priority.js');
const SCHED_HELPER = path.resolve(__dirname, '../helpers/sched.js');

describe('SCHED_IDLE for background work', () => {
  it('idleThisProcess moves every thread, and threads started later inherit it', linux, () => {
    const script =
      `const moved = require(${JSON.stringify(PRIORITY_MODULE)}).idleThisProcess();` +
      // A libuv pool thread starts after the move.
      `require('node:crypto').pbkdf2(Buffer.alloc(1), Buffer.alloc(1), 1, 8, 'sha256', () => {` +
      `  const policies = [...require(${JSON.stringify(SCHED_HELPER)}).processPolicies(process.pid).values()];` +
      `  console.log(JSON.stringify({ moved, policies }));` +
      `});`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const { moved, policies } = JSON.parse(child.stdout) as { moved: boolean; policies: number[] };
    assert.equal(moved, true);
    assert.ok(policies.length > 4, `threads: ${policies.length}`);
    assert.deepEqual(new Set(policies), new Set([SCHED_IDLE]));
    // This process was not touched.
    assert.equal(processPolicies(process.pid).get(process.pid), SCHED_OTHER);
  });
});
