import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { SCHED_IDLE, SCHED_OTHER, processPolicies } from '../helpers/sched';

const linux = { skip: process.platform !== 'linux' };
const PRIORITY_MODULE = path.resolve(__dirname, '../../src/core/priority.js');

describe('SCHED_IDLE for background work', () => {
  it('idleThisProcess moves every thread, and threads started later inherit it', linux, () => {
    const script =
      `const moved = require(${JSON.stringify(PRIORITY_MODULE)}).idleThisProcess();` +
      // A libuv pool thread starts after the move.
      `require('node:crypto').pbkdf2(Buffer.alloc(1), Buffer.alloc(1), 1, 8, 'sha256', () => {` +
      `  const fs = require('node:fs');` +
      `  const policies = fs.readdirSync('/proc/self/task').map((tid) => {` +
      `    const stat = fs.readFileSync('/proc/self/task/' + tid + '/stat', 'latin1');` +
      `    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);` +
      `  });` +
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
