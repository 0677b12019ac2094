// Gateways on a real etcd, selected through PALISADE_ETCD_HOSTS: a
// traditional gateway writes through its Admin API and every worker serves the
// change (the agent watches etcd and the primary relays); a data_plane gateway
// on the same etcd serves it too and has no Admin API; a control_plane
// gateway has the Admin API and no proxy; killing the agent does not stop
// traffic, and a change made meanwhile arrives once it is back.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import {
  adminHeaders,
  cleanup,
  makeHome,
  putRoute,
  readAdminKey,
  readStatus,
  request,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type GatewayHome,
} from './harness';
import { startLoad } from './load';

const WORKERS = 3;
let etcd: EtcdServer;

before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await cleanup();
  await etcd?.close();
});

/** Every worker of the gateway at `home` has applied the version of route `id`, as the Admin API at `admin` reports it. */
async function appliedEverywhere(home: GatewayHome, admin: GatewayHome, key: string, id: string): Promise<void> {
  const stored = await request(`${admin.adminUrl}/routes/${id}`, { headers: adminHeaders(key) });
  assert.equal(stored.status, 200, stored.body);
  const version = (JSON.parse(stored.body) as { modifiedIndex: number }).modifiedIndex;
  const applied = await request(`${home.controlUrl}/v1/processes?version=${version}&wait_ms=10000`, {
    timeoutMs: 15_000,
  });
  assert.equal(applied.status, 200, applied.body);
}

async function served(home: GatewayHome, uri: string): Promise<void> {
  await waitFor(`${uri} to be served`, 10_000, async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => request(`${home.proxyUrl}${uri}`)));
    return results.every((r) => r.status === 200) ? true : undefined;
  });
}

describe('gateways on etcd (system)', { timeout: 180_000 }, () => {
  test('traditional and data_plane gateways share etcd; control_plane writes it', async () => {
    const upstream = await startUpstream();
    const prefix = `/palisade-system-${process.pid}`;
    const env = { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: prefix };
    const key = 'etcd-system-admin-key-0001';
    const traditionalHome = await makeHome({ workers: WORKERS, adminKey: key });
    const dataPlaneHome = await makeHome({ workers: WORKERS, adminKey: key });
    const controlPlaneHome = await makeHome({ adminKey: key });
    const traditional = await startGateway(traditionalHome, { env });
    const dataPlane = await startGateway(dataPlaneHome, {
      env: { ...env, PALISADE_DEPLOYMENT_ROLE: 'data_plane' },
      waitFor: 'proxy',
    });
    const controlPlane = await startGateway(controlPlaneHome, {
      env: { ...env, PALISADE_DEPLOYMENT_ROLE: 'control_plane' },
      waitFor: 'admin',
    });
    try {
      assert.equal(readStatus(traditionalHome)?.role, 'traditional');
      // A write through the traditional gateway reaches every worker of both data planes.
      assert.equal((await putRoute(traditionalHome, key, '1', '/hello', upstream.port)).status, 201);
      await appliedEverywhere(traditionalHome, traditionalHome, key, '1');
      await appliedEverywhere(dataPlaneHome, traditionalHome, key, '1');
      await served(traditionalHome, '/hello');
      await served(dataPlaneHome, '/hello');

      // The data plane has no Admin API.
      const status = readStatus(dataPlaneHome);
      assert.equal(status?.role, 'data_plane');
      assert.equal(status?.admin, undefined);
      await assert.rejects(request(`${dataPlaneHome.adminUrl}/routes`, { headers: adminHeaders(key) }), /ECONNREFUSED/);

      // The control plane writes; it runs no proxy and no agent.
      const controlStatus = readStatus(controlPlaneHome);
      assert.equal(controlStatus?.role, 'control_plane');
      assert.deepEqual(controlStatus?.proxy, []);
      assert.equal(controlStatus?.agent, undefined);
      assert.equal((await putRoute(controlPlaneHome, key, '2', '/from-control', upstream.port)).status, 201);
      await appliedEverywhere(dataPlaneHome, controlPlaneHome, key, '2');
      await served(dataPlaneHome, '/from-control');
      await served(traditionalHome, '/from-control');
    } finally {
      await Promise.all([stopGateway(traditional), stopGateway(dataPlane), stopGateway(controlPlane)]);
      await upstream.close();
    }
  });

  test('kill -9 of the agent (the etcd watcher): traffic continues; a change made meanwhile arrives', async () => {
    const upstream = await startUpstream();
    const env = { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: `/palisade-agent-${process.pid}` };
    const home = await makeHome({ workers: WORKERS });
    const gateway = await startGateway(home, { env });
    try {
      const key = readAdminKey(home);
      assert.equal((await putRoute(home, key, '1', '/hello', upstream.port)).status, 201);
      await served(home, '/hello');
      const before = await waitFor('the agent', 10_000, () => readStatus(home)?.agent?.pid);

      const load = startLoad(`${home.proxyUrl}/hello`, { connections: 8 });
      await waitFor('load to run', 5000, () => (load.ok() > 100 ? true : undefined));
      process.kill(before, 'SIGKILL');
      assert.equal((await putRoute(home, key, '2', '/during', upstream.port)).status, 201);
      await waitFor('a new agent', 15_000, () => {
        const agent = readStatus(home)?.agent;
        return agent?.ready && agent.pid !== before ? true : undefined;
      });
      await appliedEverywhere(home, home, key, '2');
      await served(home, '/during');
      const result = await load.stop();
      assert.ok(result.ok > 0);
      assert.deepEqual(result.serverErrors, []);
      assert.deepEqual(result.socketErrors, []);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });
});
