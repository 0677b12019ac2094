// The deployment's shape: the active checker in one process (the agent) and a
// DataPlane in another (a worker), sharing one dictionary file. Native
// backends only: the js backend's dictionary lives in one process.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import type { Upstream } from '../../src/schema/types';
import { availableBackends } from '../helpers/backends';
import { startChild, type ChildHandle } from '../helpers/child';
import type { TestConfig } from '../helpers/dataplane';
import {
  get,
  openTestDict,
  startHealthDataPlane,
  startSwitchableUpstream,
  waitUntil,
  type HealthDataPlane,
  type SwitchableUpstream,
  type TestDict,
} from './support';

const CHECKER_SCRIPT = path.join(__dirname, 'checker-child.js');

for (const backend of availableBackends(['ffi', 'napi'])) {
  describe(`health checks across processes (${backend.name})`, () => {
    let testDict: TestDict;
    let primary: SwitchableUpstream;
    let secondary: SwitchableUpstream;
    let gateway: HealthDataPlane;
    let checker: ChildHandle<{ ready: boolean }>;

    before(async () => {
      testDict = openTestDict(backend);
      primary = await startSwitchableUpstream('primary');
      secondary = await startSwitchableUpstream('secondary');
      const upstream: Upstream = {
        id: 'clusters',
        nodes: [
          { host: '127.0.0.1', port: primary.port, weight: 1, priority: 0 },
          { host: '127.0.0.1', port: secondary.port, weight: 1, priority: -1 },
        ],
        checks: {
          active: {
            http_path: '/health',
            healthy: { interval: 0.05, successes: 2 },
            unhealthy: { interval: 0.05, http_failures: 2 },
          },
        },
      };
      const config: TestConfig = {
        upstreams: [upstream],
        routes: [{ id: 'clusters', uri: '/clusters', upstream_id: 'clusters' }],
      };
      gateway = await startHealthDataPlane(backend, testDict.dict, config);
      checker = await startChild<{ ready: boolean }>(CHECKER_SCRIPT, {
        PALISADE_TEST_BACKEND: backend.name,
        PALISADE_TEST_DICT: testDict.file,
        PALISADE_TEST_CONFIG: JSON.stringify(config),
      });
    });
    after(async () => {
      await checker?.stop();
      await gateway?.close();
      await primary.close();
      await secondary.close();
      testDict.close();
    });

    /** Send requests until 6 in a row come from `name`; fails after 5 s. */
    async function until(name: string): Promise<void> {
      let inARow = 0;
      const deadline = Date.now() + 5000;
      while (inARow < 6) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for answers from ${name}`);
        inARow = (await get(gateway.port, '/clusters')).body === name ? inARow + 1 : 0;
      }
    }

    it('a checker in another process moves the DataPlane to priority -1 and back', async () => {
      assert.equal(checker.ready.ready, true);
      await waitUntil(() => primary.checks() >= 1, 'the child checks the primary');
      assert.equal((await get(gateway.port, '/clusters')).body, 'primary');
      primary.status = 500;
      await until('secondary');
      primary.status = 200;
      await until('primary');
    });
  });
}
