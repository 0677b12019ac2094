// Gateways on a real etcd that APISIX tooling, not Palisade, wrote, and on an
// etcd that dies under load:
//
// - keys written straight into etcd in APISIX's layout (`<prefix>/upstreams/1`,
//   `<prefix>/routes/1` with JSON values carrying id, create_time and
//   update_time) are served by a gateway started afterwards, and a key written
//   while it runs reaches every worker;
// - etcd killed (SIGKILL) during traffic: every request keeps getting 200 from
//   the last known config, an Admin API write fails with a 5xx JSON error and
//   nothing crashes; once etcd is back on the same data dir and port, a route
//   written through the Admin API is served by every worker;
// - etcd that hangs (SIGSTOP: connections open, no answers): Admin API reads
//   and writes answer 503 within deployment.etcd.timeout, the proxy keeps
//   serving, and once etcd runs again both work.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import {
  adminHeaders,
  cleanup,
  makeHome,
  putRoute,
  request,
  readStatus,
  sleep,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type Gateway,
  type GatewayHome,
} from './harness';

const WORKERS = 2;
const ADMIN_KEY = 'etcd-outage-admin-key-0001';

after(async () => {
  await cleanup();
});

/** Every worker of `home` has applied config version `version` (an etcd revision), as the control API reports it. */
async function appliedEverywhere(home: GatewayHome, version: number): Promise<void> {
  const applied = await request(`${home.controlUrl}/v1/processes?version=${version}&wait_ms=10000`, {
    timeoutMs: 15_000,
  });
  assert.equal(applied.status, 200, applied.body);
  const report = JSON.parse(applied.body) as { workers: Array<{ appliedVersion: number }> };
  assert.equal(report.workers.length, WORKERS, applied.body);
}

/** `uri` answers 200 from the upstream on a dozen fresh connections at once (so on every worker). */
async function served(home: GatewayHome, uri: string, headers: Record<string, string> = {}): Promise<void> {
  await waitFor(`${uri} to be served`, 10_000, async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => request(`${home.proxyUrl}${uri}`, { headers })));
    return results.every((r) => r.status === 200 && r.body === `upstream:${uri}`) ? true : undefined;
  });
}

/** The value APISIX's Admin API would have stored: the item with its id and both timestamps. */
function apisixValue(id: string, fields: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({ id, ...fields, create_time: now, update_time: now });
}

interface StatusLoadResult {
  /** Responses by status code. */
  statuses: Map<number, number>;
  /** Failed requests (socket errors on a fresh connection), with when they happened. */
  failures: string[];
  /** Requests sent again because the server closed a reused keep-alive connection. */
  reconnects: number;
}

/**
 * A closed-loop keep-alive load that counts every status code, unlike
 * ./load (which counts any status below 500 as success): a route that
 * vanished during the outage would answer 404, and that must show up.
 */
function startStatusLoad(url: string, connections: number) {
  const result: StatusLoadResult = { statuses: new Map(), failures: [], reconnects: 0 };
  let running = true;
  const count = (status: number): void => {
    result.statuses.set(status, (result.statuses.get(status) ?? 0) + 1);
  };
  const get = (agent: http.Agent): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.get(url, { agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    });
  const loop = async (): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (running) {
        try {
          count(await get(agent));
        } catch (err) {
          if ((err as { reused?: boolean }).reused !== true) {
            result.failures.push(`${new Date().toISOString()} ${(err as Error).message}`);
            continue;
          }
          // The server closed an idle keep-alive connection: like wrk, open a new one.
          result.reconnects += 1;
          try {
            count(await get(agent));
          } catch (second) {
            result.failures.push(`${new Date().toISOString()} after reconnect: ${(second as Error).message}`);
          }
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const loops = Array.from({ length: connections }, () => loop());
  return {
    /** Requests answered so far, whatever their status. */
    answered: () => [...result.statuses.values()].reduce((sum, n) => sum + n, 0),
    /** Responses other than 200 and failures so far. */
    bad: () => result.failures.length + [...result.statuses].filter(([s]) => s !== 200).reduce((n, [, c]) => n + c, 0),
    async stop(): Promise<StatusLoadResult> {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

function workerPids(home: GatewayHome): number[] {
  return (readStatus(home)?.workers ?? []).map((worker) => worker.pid).sort((a, b) => a - b);
}

/**
 * Start a gateway and wait until all its workers listen: startGateway returns
 * once the first one does, and a check on "every worker" needs them all.
 * The waits are generous because a loaded 2-CPU machine has taken over 20 s.
 */
async function startAllWorkers(home: GatewayHome, env: Record<string, string>): Promise<Gateway> {
  const gateway = await startGateway(home, { env, waitMs: 40_000 });
  try {
    await waitFor(`${WORKERS} workers to listen`, 20_000, () => {
      if (!stillRunning(gateway)) throw new Error(`the gateway exited:\n${gateway.stderr()}`);
      return readStatus(home)?.workers.length === WORKERS ? true : undefined;
    });
  } catch (err) {
    await stopGateway(gateway);
    throw err;
  }
  return gateway;
}

function stillRunning(gateway: Gateway): boolean {
  return gateway.child.exitCode === null && gateway.child.signalCode === null;
}

describe('gateways on etcd: APISIX-written keys and etcd outages (system)', () => {
  test(
    'keys written directly in the APISIX layout are served, at start and while running',
    { timeout: 90_000 },
    async () => {
      let etcd: EtcdServer | undefined;
      let client: Etcd3 | undefined;
      let gateway: Gateway | undefined;
      const upstream = await startUpstream();
      try {
        etcd = await startEtcd();
        client = new Etcd3({ hosts: etcd.url });
        const prefix = `/apisix-direct-${process.pid}`;
        const node = { host: '127.0.0.1', port: upstream.port, weight: 1 };
        // APISIX's init_dir placeholder and gen_id live under the prefix too; the store must skip them.
        await client.put(`${prefix}/routes`).value('init_dir');
        await client.put(`${prefix}/gen_id`).value('7');
        await client
          .put(`${prefix}/upstreams/1`)
          .value(apisixValue('1', { type: 'roundrobin', nodes: [node], scheme: 'http', pass_host: 'pass' }));
        await client
          .put(`${prefix}/routes/1`)
          .value(apisixValue('1', { uri: '/direct', methods: ['GET'], upstream_id: '1', status: 1, priority: 0 }));
        await client.put(`${prefix}/routes/2`).value(
          apisixValue('2', {
            uri: '/inline',
            upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 }, hash_on: 'vars' },
          }),
        );
        await client
          .put(`${prefix}/routes/3`)
          .value(apisixValue('3', { uri: '/hosted', hosts: ['api.example.test'], upstream_id: '1' }));

        const home = await makeHome({ workers: WORKERS, adminKey: ADMIN_KEY });
        gateway = await startAllWorkers(home, { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: prefix });

        await served(home, '/direct');
        await served(home, '/inline');
        await served(home, '/hosted', { host: 'api.example.test' });
        // The route fields matched, not just the uri: another method or host finds no route.
        assert.equal((await request(`${home.proxyUrl}/direct`, { method: 'POST', body: {} })).status, 404);
        assert.equal(
          (await request(`${home.proxyUrl}/hosted`, { headers: { host: 'other.example.test' } })).status,
          404,
        );
        // The Admin API reads the directly written keys as its own.
        const listed = await request(`${home.adminUrl}/routes/1`, { headers: adminHeaders(ADMIN_KEY) });
        assert.equal(listed.status, 200, listed.body);
        assert.equal((JSON.parse(listed.body) as { value: { upstream_id: string } }).value.upstream_id, '1');

        // A key written straight into etcd while the gateway runs reaches every worker.
        const written = await client
          .put(`${prefix}/routes/4`)
          .value(apisixValue('4', { uri: '/later', methods: ['GET', 'HEAD'], upstream_id: '1' }));
        await appliedEverywhere(home, Number(written.header.revision));
        await served(home, '/later');
        assert.ok(stillRunning(gateway), `the gateway exited:\n${gateway.stderr()}`);
      } finally {
        if (gateway) await stopGateway(gateway);
        client?.close();
        await etcd?.close();
        await upstream.close();
      }
    },
  );

  test(
    'etcd killed and restarted during traffic: routes keep answering; a change after the restart applies',
    { timeout: 90_000 },
    async (t) => {
      let etcd: EtcdServer | undefined;
      let gateway: Gateway | undefined;
      let load: ReturnType<typeof startStatusLoad> | undefined;
      const upstream = await startUpstream();
      try {
        etcd = await startEtcd();
        const home = await makeHome({ workers: WORKERS, adminKey: ADMIN_KEY });
        const env = { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: `/palisade-outage-${process.pid}` };
        gateway = await startAllWorkers(home, env);
        assert.equal((await putRoute(home, ADMIN_KEY, '1', '/hello', upstream.port)).status, 201);
        await served(home, '/hello');
        const pidsBefore = workerPids(home);
        assert.equal(pidsBefore.length, WORKERS);

        load = startStatusLoad(`${home.proxyUrl}/hello`, 8);
        const running = load;
        await waitFor('load to run', 5000, () => (running.answered() > 200 ? true : undefined));
        await etcd.kill();
        const answeredAtKill = load.answered();

        // A write while etcd is down fails with a JSON error naming the cause, and fails within the request deadline.
        const writeStarted = Date.now();
        const during = await request(`${home.adminUrl}/routes/2`, {
          method: 'PUT',
          headers: adminHeaders(ADMIN_KEY),
          body: { uri: '/during', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } } },
          timeoutMs: 15_000,
        });
        t.diagnostic(`write during the outage: ${during.status} ${during.body} after ${Date.now() - writeStarted} ms`);
        assert.ok(during.status >= 500 && during.status < 600, `status ${during.status}: ${during.body}`);
        const error = JSON.parse(during.body) as { error_msg?: unknown };
        assert.equal(typeof error.error_msg, 'string', during.body);
        assert.match(error.error_msg as string, /etcd/i);
        // Reads fail the same way, as APISIX's read etcd; the proxy keeps serving the last known config.
        const read = await request(`${home.adminUrl}/routes/1`, { headers: adminHeaders(ADMIN_KEY) });
        assert.equal(read.status, 503, read.body);
        assert.match((JSON.parse(read.body) as { error_msg: string }).error_msg, /^etcd request failed: /);

        // Keep the load running with etcd down for at least 2 s more.
        await sleep(2000);
        const answeredDuringOutage = load.answered() - answeredAtKill;
        t.diagnostic(`${answeredDuringOutage} requests answered while etcd was down`);
        assert.ok(answeredDuringOutage > 100, `only ${answeredDuringOutage} requests answered while etcd was down`);
        assert.equal(load.bad(), 0, 'a request failed or was not 200 while etcd was down');
        assert.ok(stillRunning(gateway), `the gateway exited during the outage:\n${gateway.stderr()}`);
        assert.deepEqual(workerPids(home), pidsBefore, 'a worker was replaced during the outage');

        await etcd.start();
        const restarted = Date.now();
        // The store reconnects on a backoff (up to 5 s); a write is accepted once it reaches etcd again.
        await waitFor('the Admin API to accept a write after the restart', 30_000, async () => {
          const reply = await putRoute(home, ADMIN_KEY, '3', '/after', upstream.port);
          return reply.status === 201 ? true : undefined;
        });
        t.diagnostic(`write accepted ${Date.now() - restarted} ms after etcd was healthy again`);
        const stored = await request(`${home.adminUrl}/routes/3`, { headers: adminHeaders(ADMIN_KEY) });
        assert.equal(stored.status, 200, stored.body);
        await appliedEverywhere(home, (JSON.parse(stored.body) as { modifiedIndex: number }).modifiedIndex);
        await served(home, '/after');
        // The write that failed during the outage was not applied behind the caller's back.
        assert.equal((await request(`${home.proxyUrl}/during`)).status, 404);

        const result = await load.stop();
        load = undefined;
        t.diagnostic(`load: ${JSON.stringify([...result.statuses])} statuses, ${result.reconnects} reconnects`);
        const notOk = [...result.statuses].filter(([status]) => status !== 200);
        assert.deepEqual(notOk, [], 'responses other than 200 during the run');
        assert.deepEqual(result.failures, [], 'failed requests during the run');
        assert.ok((result.statuses.get(200) ?? 0) > 0);
        assert.ok(stillRunning(gateway), `the gateway exited:\n${gateway.stderr()}`);
        assert.deepEqual(workerPids(home), pidsBefore, 'a worker was replaced during the run');
      } finally {
        await load?.stop();
        if (gateway) await stopGateway(gateway);
        await etcd?.close();
        await upstream.close();
      }
    },
  );

  test(
    'etcd that stops answering: the Admin API answers 503 within the etcd timeout; the proxy keeps serving',
    { timeout: 90_000 },
    async (t) => {
      let etcd: EtcdServer | undefined;
      let gateway: Gateway | undefined;
      const upstream = await startUpstream();
      try {
        etcd = await startEtcd();
        const timeoutMs = 2000;
        const home = await makeHome({
          workers: WORKERS,
          adminKey: ADMIN_KEY,
          extra: ['deployment:', '  etcd:', `    timeout: ${timeoutMs}ms`],
        });
        const env = { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: `/palisade-hung-${process.pid}` };
        gateway = await startAllWorkers(home, env);
        assert.equal((await putRoute(home, ADMIN_KEY, '1', '/hello', upstream.port)).status, 201);
        await served(home, '/hello');

        etcd.pause();
        const timed = async (what: string, send: () => Promise<{ status: number; body: string }>) => {
          const started = Date.now();
          const reply = await send();
          const ms = Date.now() - started;
          t.diagnostic(`${what} while etcd hangs: ${reply.status} after ${ms} ms: ${reply.body}`);
          assert.equal(reply.status, 503, `${what}: ${reply.body}`);
          assert.match((JSON.parse(reply.body) as { error_msg: string }).error_msg, /etcd/i, what);
          // Answered by the etcd timeout, not by a hung request (the client here gives up after 15 s).
          assert.ok(ms < timeoutMs * 4, `${what} took ${ms} ms with a ${timeoutMs} ms etcd timeout`);
        };
        await timed('GET', () =>
          request(`${home.adminUrl}/routes/1`, { headers: adminHeaders(ADMIN_KEY), timeoutMs: 15_000 }),
        );
        await timed('PUT', () =>
          request(`${home.adminUrl}/routes/2`, {
            method: 'PUT',
            headers: adminHeaders(ADMIN_KEY),
            body: { uri: '/during', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } } },
            timeoutMs: 15_000,
          }),
        );
        await served(home, '/hello');
        assert.ok(stillRunning(gateway), `the gateway exited while etcd hung:\n${gateway.stderr()}`);

        etcd.resume();
        await waitFor('the Admin API to read etcd again', 30_000, async () => {
          const read = await request(`${home.adminUrl}/routes/1`, { headers: adminHeaders(ADMIN_KEY) });
          return read.status === 200 ? true : undefined;
        });
        await waitFor('a write to be accepted again', 30_000, async () =>
          (await putRoute(home, ADMIN_KEY, '3', '/after', upstream.port)).status === 201 ? true : undefined,
        );
        await served(home, '/after');
      } finally {
        etcd?.resume();
        if (gateway) await stopGateway(gateway);
        await etcd?.close();
        await upstream.close();
      }
    },
  );
});
