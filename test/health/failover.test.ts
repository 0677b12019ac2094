// Active checks and a DataPlane in one process, sharing one dictionary (as the
// agent and the workers do): an unhealthy node gets no traffic and gets it back
// when healthy; when every priority-0 node is down traffic moves to priority -1
// and moves back; when every node is down all are used, as in APISIX.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { startActiveHealthChecks, type HealthChecker } from '../../src/health';
import { readNodeHealth } from '../../src/health/report';
import type { Upstream } from '../../src/schema/types';
import { availableBackends } from '../helpers/backends';
import { snapshot, type TestConfig } from '../helpers/dataplane';
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

type Checks = NonNullable<Upstream['checks']>;

const CHECKS: Checks = {
  active: {
    http_path: '/health',
    timeout: 0.5,
    healthy: { interval: 0.05, successes: 2 },
    unhealthy: { interval: 0.05, http_failures: 2 },
  },
};

/** Bodies (upstream names) of `count` requests. */
async function answers(port: number, uri: string, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) bodies.push((await get(port, uri)).body);
  return bodies;
}

for (const backend of availableBackends()) {
  describe(`health checks with a data plane (${backend.name})`, () => {
    let testDict: TestDict;
    let upstreams: SwitchableUpstream[];
    let checker: HealthChecker | null = null;
    let gateway: HealthDataPlane | null = null;

    before(async () => {
      testDict = openTestDict(backend);
      upstreams = await Promise.all(['a1', 'a2', 'b1'].map((name) => startSwitchableUpstream(name)));
    });
    after(async () => {
      await Promise.all(upstreams.map((upstream) => upstream.close()));
      testDict.close();
    });
    afterEach(async () => {
      await checker?.stop();
      checker = null;
      await gateway?.close();
      gateway = null;
      for (const upstream of upstreams) upstream.status = 200;
    });

    /** Start the DataPlane and the checker on the same config, as a worker and the agent would. */
    async function start(config: TestConfig): Promise<HealthDataPlane> {
      gateway = await startHealthDataPlane(backend, testDict.dict, config);
      checker = startActiveHealthChecks({ dict: testDict.dict });
      checker.update(snapshot(config));
      return gateway;
    }

    const healthOf = (upstreamId: string, upstream: SwitchableUpstream) =>
      readNodeHealth(testDict.dict, upstreamId, `127.0.0.1:${upstream.port}`).healthy;

    /**
     * Send requests until `inARow` answers in a row satisfy `accept` (the data plane
     * copies health every 100 ms, so a change shows a little after the dictionary's).
     */
    async function until(
      port: number,
      uri: string,
      accept: (body: string) => boolean,
      what: string,
      inARow = 6,
    ): Promise<void> {
      const deadline = Date.now() + 5000;
      let accepted = 0;
      while (accepted < inARow) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
        const { body } = await get(port, uri);
        accepted = accept(body) ? accepted + 1 : 0;
      }
    }

    it('an unhealthy node gets no traffic, and gets it back when healthy', async () => {
      const [a1, a2] = upstreams;
      const { port } = await start({
        routes: [
          {
            id: 'skip',
            uri: '/skip',
            upstream: { nodes: { [`127.0.0.1:${a1.port}`]: 1, [`127.0.0.1:${a2.port}`]: 1 }, checks: CHECKS },
          },
        ],
      });
      assert.deepEqual(new Set(await answers(port, '/skip', 4)), new Set(['a1', 'a2']));
      a2.status = 500;
      await waitUntil(() => !healthOf('route:skip', a2), 'a2 unhealthy');
      await until(port, '/skip', (body) => body === 'a1', 'a2 out of rotation');
      assert.deepEqual(await answers(port, '/skip', 10), new Array(10).fill('a1'));
      a2.status = 200;
      await waitUntil(() => healthOf('route:skip', a2), 'a2 healthy');
      await until(port, '/skip', (body) => body === 'a2', 'a2 back in rotation', 1);
      assert.deepEqual(new Set(await answers(port, '/skip', 4)), new Set(['a1', 'a2']));
    });

    it('fails over from priority 0 to priority -1 when every priority-0 node is down, and back', async () => {
      const [a1, a2, b1] = upstreams;
      const config: TestConfig = {
        upstreams: [
          {
            id: 'clusters',
            nodes: [
              { host: '127.0.0.1', port: a1.port, weight: 1, priority: 0 },
              { host: '127.0.0.1', port: a2.port, weight: 1, priority: 0 },
              { host: '127.0.0.1', port: b1.port, weight: 1, priority: -1 },
            ],
            checks: CHECKS,
          },
        ],
        routes: [{ id: 'clusters', uri: '/clusters', upstream_id: 'clusters' }],
      };
      const { port } = await start(config);
      const primary = (body: string) => body === 'a1' || body === 'a2';
      assert.ok((await answers(port, '/clusters', 6)).every(primary), 'cluster A serves while healthy');

      a1.status = 500;
      await waitUntil(() => !healthOf('clusters', a1), 'a1 unhealthy');
      await until(port, '/clusters', (body) => body === 'a2', 'a2 alone');
      assert.deepEqual(await answers(port, '/clusters', 6), new Array(6).fill('a2'), 'still priority 0');

      a2.status = 500;
      await waitUntil(() => !healthOf('clusters', a2), 'a2 unhealthy');
      await until(port, '/clusters', (body) => body === 'b1', 'fail-over to cluster B');
      assert.deepEqual(await answers(port, '/clusters', 10), new Array(10).fill('b1'));

      a1.status = 200;
      a2.status = 200;
      await waitUntil(() => healthOf('clusters', a1) && healthOf('clusters', a2), 'cluster A healthy');
      // Both back in the data plane's copy: each has answered since the dictionary said so.
      await until(port, '/clusters', (body) => body === 'a1', 'a1 back', 1);
      await until(port, '/clusters', (body) => body === 'a2', 'a2 back', 1);
      const bodies = await answers(port, '/clusters', 10);
      assert.ok(bodies.every(primary), `only cluster A: ${bodies.join(' ')}`);
      assert.deepEqual(new Set(bodies), new Set(['a1', 'a2']));

      const report = checker!.status();
      assert.deepEqual(
        report.upstreams[0].nodes.map((node) => [node.node, node.healthy]),
        [
          [`127.0.0.1:${a1.port}`, true],
          [`127.0.0.1:${a2.port}`, true],
          [`127.0.0.1:${b1.port}`, true],
        ],
      );
    });

    it('uses every node when every node is down', async () => {
      const [a1] = upstreams;
      const { port } = await start({
        routes: [{ id: 'alone', uri: '/alone', upstream: { nodes: { [`127.0.0.1:${a1.port}`]: 1 }, checks: CHECKS } }],
      });
      a1.status = 500;
      await waitUntil(() => !healthOf('route:alone', a1), 'a1 unhealthy');
      await new Promise((resolve) => setTimeout(resolve, 250)); // past a refresh of the data plane's copy
      const res = await get(port, '/alone');
      assert.equal(res.status, 500);
      assert.equal(res.body, 'a1', 'the unhealthy node still answers rather than a 502');
    });
  });
}
