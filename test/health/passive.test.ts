// Passive checks through a DataPlane: proxied 5xx responses, refused connects
// and timeouts count into the shared state and take the node out; passive
// checks without active ones do nothing (APISIX: passive needs active to recover).
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { readNodeHealth } from '../../src/health/report';
import type { Upstream } from '../../src/schema/types';
import { availableBackends } from '../helpers/backends';
import { closedPort, startRawUpstream, type RawUpstream } from '../helpers/upstream';
import {
  get,
  openTestDict,
  startHealthDataPlane,
  startSwitchableUpstream,
  type HealthDataPlane,
  type SwitchableUpstream,
  type TestDict,
} from './support';

type Checks = NonNullable<Upstream['checks']>;

/** Active checks that never run here: the agent's checker is not started in these tests. */
const IDLE_ACTIVE: NonNullable<Checks['active']> = { type: 'tcp' };

for (const backend of availableBackends()) {
  describe(`passive health checks (${backend.name})`, () => {
    let testDict: TestDict;
    let good: SwitchableUpstream;
    let failing: SwitchableUpstream;
    let gateway: HealthDataPlane | null = null;

    before(async () => {
      testDict = openTestDict(backend);
      good = await startSwitchableUpstream('good');
      failing = await startSwitchableUpstream('failing', 500);
    });
    after(async () => {
      await good.close();
      await failing.close();
      testDict.close();
    });
    afterEach(async () => {
      await gateway?.close();
      gateway = null;
    });

    const health = (upstreamId: string, port: number) => readNodeHealth(testDict.dict, upstreamId, `127.0.0.1:${port}`);

    it('takes a node out after exactly unhealthy.http_failures proxied 500s', async () => {
      const before500s = failing.proxied();
      gateway = await startHealthDataPlane(backend, testDict.dict, {
        routes: [
          {
            id: 'statuses',
            uri: '/statuses',
            upstream: {
              nodes: { [`127.0.0.1:${good.port}`]: 1, [`127.0.0.1:${failing.port}`]: 1 },
              checks: { active: IDLE_ACTIVE, passive: { unhealthy: { http_failures: 3 } } },
            },
          },
        ],
      });
      const bodies: string[] = [];
      for (let i = 0; i < 16; i++) bodies.push((await get(gateway.port, '/statuses')).body);
      assert.equal(failing.proxied() - before500s, 3, 'the failing node got three requests');
      assert.equal(bodies.filter((body) => body === 'failing').length, 3);
      assert.deepEqual(bodies.slice(-8), new Array(8).fill('good'), 'then only the good node');
      assert.equal(health('route:statuses', failing.port).healthy, false);
      assert.equal(health('route:statuses', good.port).healthy, true);
    });

    it('a status in neither list is not counted, and a success ends a run of failures', async () => {
      const gatewayConfig = {
        upstreams: [
          {
            id: 'mixed',
            nodes: { [`127.0.0.1:${failing.port}`]: 1 },
            checks: {
              active: IDLE_ACTIVE,
              passive: { unhealthy: { http_statuses: [500], http_failures: 2 } },
            },
          },
        ],
        routes: [{ id: 'mixed', uri: '/mixed', upstream_id: 'mixed' }],
      };
      gateway = await startHealthDataPlane(backend, testDict.dict, gatewayConfig);
      const sequence: Array<[number, boolean]> = [
        [500, true], // 1 failure
        [200, true], // the run ends
        [500, true], // 1 failure
        [404, true], // in neither list
        [500, false], // 2 failures in a row: out
      ];
      for (const [status, healthyAfter] of sequence) {
        failing.status = status;
        assert.equal((await get(gateway.port, '/mixed')).status, status);
        assert.equal(health('mixed', failing.port).healthy, healthyAfter, `after a ${status}`);
      }
      failing.status = 500;
    });

    it('counts refused connects as tcp failures (the request is retried on the next node)', async () => {
      const deadPort = await closedPort();
      gateway = await startHealthDataPlane(backend, testDict.dict, {
        routes: [
          {
            id: 'refused',
            uri: '/refused',
            upstream: {
              nodes: { [`127.0.0.1:${deadPort}`]: 1, [`127.0.0.1:${good.port}`]: 1 },
              checks: { active: IDLE_ACTIVE, passive: { unhealthy: { tcp_failures: 2 } } },
            },
          },
        ],
      });
      for (let i = 0; i < 6; i++) assert.equal((await get(gateway.port, '/refused')).status, 200);
      assert.equal(health('route:refused', deadPort).healthy, false);
    });

    it('counts a timed-out response head as a timeout', async () => {
      const silent: RawUpstream = await startRawUpstream(() => {});
      try {
        gateway = await startHealthDataPlane(backend, testDict.dict, {
          routes: [
            {
              id: 'slow',
              uri: '/slow',
              timeout: { connect: 1, send: 1, read: 0.1 },
              upstream: {
                nodes: { [`127.0.0.1:${silent.port}`]: 1 },
                checks: { active: IDLE_ACTIVE, passive: { unhealthy: { timeouts: 2 } } },
              },
            },
          ],
        });
        assert.equal((await get(gateway.port, '/slow')).status, 504);
        assert.equal(health('route:slow', silent.port).healthy, true);
        assert.equal(health('route:slow', silent.port).failures, 1);
        assert.equal((await get(gateway.port, '/slow')).status, 504);
        assert.equal(health('route:slow', silent.port).healthy, false);
      } finally {
        await gateway?.close();
        gateway = null;
        await silent.close();
      }
    });

    it('does nothing without active checks', async () => {
      const before500s = failing.proxied();
      gateway = await startHealthDataPlane(backend, testDict.dict, {
        routes: [
          {
            id: 'passive-only',
            uri: '/passive-only',
            upstream: {
              nodes: { [`127.0.0.1:${failing.port}`]: 1 },
              checks: { passive: { unhealthy: { http_failures: 1 } } } as Checks,
            },
          },
        ],
      });
      for (let i = 0; i < 3; i++) assert.equal((await get(gateway.port, '/passive-only')).status, 500);
      assert.equal(failing.proxied() - before500s, 3);
      assert.equal(testDict.dict.get(`health/route:passive-only/127.0.0.1:${failing.port}/failures`), undefined);
    });
  });
}
