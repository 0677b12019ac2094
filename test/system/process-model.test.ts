// The process model under load: 3 workers plus the privileged agent.
//   - kill -9 of a worker: only requests on that worker's connections fail (the count is reported), it is replaced;
//   - kill -9 of the agent: traffic continues, config changes still arrive, the agent comes back;
//   - `palisade reload` under load: no request fails;
//   - config written through the Admin API is applied by every worker, and the control API reports it.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  adminHeaders,
  cleanup,
  cli,
  makeHome,
  putRoute,
  readAdminKey,
  readStatus,
  request,
  sleep,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type GatewayHome,
  type StatusFile,
} from './harness';
import { startLoad } from './load';

after(cleanup);

const WORKERS = 3;

async function routeReady(home: GatewayHome, uri: string): Promise<void> {
  await waitFor(`${uri} to be served`, 5000, async () =>
    (await request(`${home.proxyUrl}${uri}`)).status === 200 ? true : undefined,
  );
}

/** The status once WORKERS workers and a ready agent are up, none of them in `gone`. */
function fullStrength(home: GatewayHome, gone: number[] = []): Promise<StatusFile> {
  return waitFor('all workers and the agent', 15_000, () => {
    const status = readStatus(home);
    if (!status || status.workers.length !== WORKERS || !status.agent?.ready) return undefined;
    if (status.workers.some((w) => gone.includes(w.pid)) || gone.includes(status.agent.pid)) return undefined;
    return status;
  });
}

describe('process model (system)', { timeout: 180_000 }, () => {
  test('kill -9 of a worker under load: only its requests fail, and it is replaced', async (t) => {
    const upstream = await startUpstream();
    const home = await makeHome({ workers: WORKERS });
    const gateway = await startGateway(home);
    try {
      assert.equal((await putRoute(home, readAdminKey(home), '1', '/hello', upstream.port)).status, 201);
      await routeReady(home, '/hello');
      const before = await fullStrength(home);

      const connections = 12;
      // No retry: a request lost with the killed worker's connection counts as failed.
      const load = startLoad(`${home.proxyUrl}/hello`, { connections, retryClosedKeepAlive: false });
      await waitFor('load to run', 5000, () => (load.ok() > 200 ? true : undefined));
      const victim = before.workers[0].pid;
      process.kill(victim, 'SIGKILL');
      const after = await fullStrength(home, [victim]);
      const servedAtReplacement = load.ok();
      await waitFor('more traffic after the replacement', 5000, () =>
        load.ok() > servedAtReplacement + 200 ? true : undefined,
      );
      const result = await load.stop();

      t.diagnostic(
        `kill -9 of worker ${victim}: ${result.socketErrors.length} of ${result.ok + result.socketErrors.length} ` +
          `requests failed (${connections} connections)`,
      );
      assert.deepEqual(result.serverErrors, []);
      // At most the request in flight on each of its connections, and the next one sent on a connection it held.
      assert.ok(
        result.socketErrors.length <= 2 * connections,
        `${result.socketErrors.length} failures: ${result.socketErrors.join(', ')}`,
      );
      assert.ok(!after.workers.some((w) => w.pid === victim));
      assert.equal(after.agent?.pid, before.agent?.pid, 'the agent was not disturbed');
      assert.match(gateway.stderr(), /worker died; starting a replacement/);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('kill -9 of the agent: traffic continues, changes still arrive, the agent is restarted', async () => {
    const upstream = await startUpstream();
    const home = await makeHome({ workers: WORKERS });
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      assert.equal((await putRoute(home, key, '1', '/hello', upstream.port)).status, 201);
      await routeReady(home, '/hello');
      const before = await fullStrength(home);
      const agent = before.agent!.pid;

      const load = startLoad(`${home.proxyUrl}/hello`, { connections: 8 });
      await waitFor('load to run', 5000, () => (load.ok() > 100 ? true : undefined));
      process.kill(agent, 'SIGKILL');
      // With the embedded store the primary is the source: a write while the agent is down still reaches the workers.
      assert.equal((await putRoute(home, key, '2', '/during', upstream.port)).status, 201);
      await routeReady(home, '/during');
      const after = await fullStrength(home, [agent]);
      const result = await load.stop();

      assert.deepEqual(result.serverErrors, []);
      assert.deepEqual(result.socketErrors, []);
      assert.deepEqual(
        after.workers.map((w) => w.pid).sort(),
        before.workers.map((w) => w.pid).sort(),
        'no worker was replaced',
      );
      assert.match(gateway.stderr(), /agent died; workers keep serving/);
      const health = await request(`${home.controlUrl}/v1/healthcheck`);
      assert.equal(health.status, 200, health.body);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('palisade reload under load: no request fails', async (t) => {
    const upstream = await startUpstream();
    const home = await makeHome({ workers: WORKERS, drainTimeout: '5s' });
    const gateway = await startGateway(home);
    try {
      assert.equal((await putRoute(home, readAdminKey(home), '1', '/hello', upstream.port)).status, 201);
      await routeReady(home, '/hello');
      let current = await fullStrength(home);

      const load = startLoad(`${home.proxyUrl}/hello`, { connections: 12 });
      await waitFor('load to run', 5000, () => (load.ok() > 200 ? true : undefined));
      for (let round = 0; round < 2; round++) {
        const old = [...current.workers.map((w) => w.pid), current.agent!.pid];
        const reload = await cli(home, ['reload']);
        assert.equal(reload.code, 0, reload.stderr);
        current = await waitFor('every worker and the agent replaced', 30_000, () => {
          const status = readStatus(home);
          return status &&
            status.workers.length === WORKERS &&
            status.agent?.ready &&
            ![...status.workers.map((w) => w.pid), status.agent.pid].some((pid) => old.includes(pid))
            ? status
            : undefined;
        });
        await sleep(200);
      }
      const result = await load.stop();
      t.diagnostic(
        `reload x2 under load: ${result.ok} requests served, ${result.reconnects} closed keep-alive connections reopened`,
      );
      assert.ok(result.ok > 0);
      assert.deepEqual(result.serverErrors, []);
      assert.deepEqual(result.socketErrors, []);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('config written through the Admin API is applied by every worker; the control API reports it', async () => {
    const upstream = await startUpstream();
    const home = await makeHome({ workers: WORKERS });
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      await fullStrength(home);
      const put = await request(`${home.adminUrl}/upstreams/u1`, {
        method: 'PUT',
        headers: adminHeaders(key),
        body: {
          type: 'roundrobin',
          nodes: { [`127.0.0.1:${upstream.port}`]: 1 },
          checks: { active: { http_path: '/health', healthy: { interval: 1 }, unhealthy: { interval: 1 } } },
        },
      });
      assert.equal(put.status, 201, put.body);
      const route = await request(`${home.adminUrl}/routes/1`, {
        method: 'PUT',
        headers: adminHeaders(key),
        body: { uri: '/everywhere', upstream_id: 'u1' },
      });
      assert.equal(route.status, 201, route.body);
      const stored = await request(`${home.adminUrl}/routes/1`, { headers: adminHeaders(key) });
      const version = (JSON.parse(stored.body) as { modifiedIndex: number }).modifiedIndex;

      // The control API answers once every worker has applied the version.
      const applied = await request(`${home.controlUrl}/v1/processes?version=${version}&wait_ms=5000`);
      assert.equal(applied.status, 200, applied.body);
      const processes = JSON.parse(applied.body) as {
        applied: boolean;
        workers: Array<{ pid: number; appliedVersion: number }>;
        agent: { pid: number; ready: boolean };
      };
      assert.equal(processes.workers.length, WORKERS);
      assert.ok(processes.workers.every((w) => w.appliedVersion >= version));
      assert.equal(processes.agent.ready, true);

      // And traffic shows it: fresh connections, spread over the workers by the kernel, all get the route.
      const results = await Promise.all(Array.from({ length: 30 }, () => request(`${home.proxyUrl}/everywhere`)));
      assert.deepEqual(
        results.map((r) => r.status),
        results.map(() => 200),
      );

      // The agent checks the upstream; the control API shows it in APISIX's shape.
      const health = await waitFor('the health report', 5000, async () => {
        const response = await request(`${home.controlUrl}/v1/healthcheck`);
        const body = JSON.parse(response.body) as Array<{
          name: string;
          nodes: Array<{ port: number; status: string }>;
        }>;
        return response.status === 200 && body.length > 0 ? body : undefined;
      });
      assert.equal(health[0].name, '/apisix/upstreams/u1');
      assert.equal(health[0].nodes[0].port, upstream.port);
      assert.match(health[0].nodes[0].status, /^(healthy|unhealthy)$/);

      const status = await cli(home, ['status']);
      assert.match(status.stdout, /agent: +pid \d+, health checks on/);
      assert.match(status.stdout, /role: +traditional/);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });
});
