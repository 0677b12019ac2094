import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
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
  writeConfig,
} from './harness';

after(cleanup);

describe('palisade start (system)', { timeout: 120_000 }, () => {
  test('the admin key is generated, printed once, stored 0600 and reused on restart', async () => {
    const home = await makeHome();
    const first = await startGateway(home);
    const key = readAdminKey(home);
    assert.match(key, /^[0-9a-f]{32}$/);
    assert.equal(fs.statSync(path.join(home.dataDir, 'admin.key')).mode & 0o777, 0o600);
    const printed = first.stdout().match(/palisade: generated admin key ([0-9a-f]{32}) \(stored in (.+)\)/);
    assert.ok(printed, `stdout: ${first.stdout()}`);
    assert.equal(printed[1], key);
    assert.equal((await stopGateway(first)).code, 0);

    const second = await startGateway(home);
    assert.doesNotMatch(second.stdout(), /generated admin key/);
    assert.equal(readAdminKey(home), key);
    const ok = await request(`${home.adminUrl}/routes`, { headers: adminHeaders(key) });
    assert.equal(ok.status, 200);
    const wrong = await request(`${home.adminUrl}/routes`, { headers: adminHeaders('0'.repeat(32)) });
    assert.equal(wrong.status, 401);
    assert.equal((await stopGateway(second)).code, 0);
  });

  test('routes written through the Admin API carry traffic; changes apply within a short time', async () => {
    const upstream = await startUpstream();
    const home = await makeHome({ workers: 2 });
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      const headers = adminHeaders(key);
      const putUpstream = await request(`${home.adminUrl}/upstreams/1`, {
        method: 'PUT',
        headers,
        body: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } },
      });
      assert.equal(putUpstream.status, 201, putUpstream.body);
      const putRoute1 = await request(`${home.adminUrl}/routes/1`, {
        method: 'PUT',
        headers,
        body: { uri: '/hello', upstream_id: '1' },
      });
      assert.equal(putRoute1.status, 201, putRoute1.body);

      const proxied = await waitFor('the route to be served', 5000, async () => {
        const response = await request(`${home.proxyUrl}/hello`);
        return response.status === 200 ? response : undefined;
      });
      assert.equal(proxied.body, 'upstream:/hello');
      const unknown = await request(`${home.proxyUrl}/nowhere`);
      assert.equal(unknown.status, 404);

      // Both workers get every change: many fresh connections all see it.
      const changed = await putRoute(home, key, '1', '/changed', upstream.port);
      assert.equal(changed.status, 200, changed.body);
      await waitFor('the changed route', 5000, async () => {
        const results = await Promise.all(Array.from({ length: 10 }, () => request(`${home.proxyUrl}/changed`)));
        return results.every((r) => r.status === 200) ? true : undefined;
      });
      assert.equal((await request(`${home.proxyUrl}/hello`)).status, 404);

      const status = await waitFor('workers to report the new version', 5000, () => {
        const current = readStatus(home);
        return current &&
          current.workers.length === 2 &&
          current.workers.every((w) => w.appliedVersion === current.configVersion)
          ? current
          : undefined;
      });
      assert.ok(status.configVersion > 0);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('SIGTERM lets an in-flight slow request finish, then exits 0', async () => {
    const upstream = await startUpstream();
    const home = await makeHome({ drainTimeout: '10s' });
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      assert.equal((await putRoute(home, key, 'slow', '/slow', upstream.port)).status, 201);
      await waitFor('the slow route', 5000, async () => {
        const response = await request(`${home.proxyUrl}/slow?ms=1`);
        return response.status === 200 ? true : undefined;
      });

      const inFlight = request(`${home.proxyUrl}/slow?ms=1500`, { timeoutMs: 10_000 });
      await sleep(300);
      gateway.child.kill('SIGTERM');
      const response = await inFlight;
      assert.equal(response.status, 200);
      assert.equal(response.body, 'upstream:/slow');

      // The listener is closed while draining: new connections are refused.
      const exit = await gateway.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      await assert.rejects(request(`${home.proxyUrl}/slow?ms=1`, { timeoutMs: 1000 }));
      assert.ok(!fs.existsSync(path.join(home.dataDir, 'palisade.pid')), 'pid file removed');
    } finally {
      await upstream.close();
    }
  });

  test('palisade status, reload and stop', async () => {
    const home = await makeHome();
    const notYet = await cli(home, ['status']);
    assert.equal(notYet.code, 3);
    assert.match(notYet.stdout, /not running/);
    const stopMissing = await cli(home, ['stop']);
    assert.equal(stopMissing.code, 1);
    assert.match(stopMissing.stderr, /palisade stop: not running \(no pid file at .*palisade\.pid\)/);

    const gateway = await startGateway(home);
    const status = await cli(home, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`running \\(pid ${gateway.child.pid}\\)`));
    assert.match(status.stdout, new RegExp(`proxy: +127\\.0\\.0\\.1:${home.proxyPort}`));
    assert.match(status.stdout, new RegExp(`admin: +127\\.0\\.0\\.1:${home.adminPort}`));
    assert.match(status.stdout, /backend: +(ffi|napi|js)/);
    assert.match(status.stdout, /config version: +\d+/);
    const json = JSON.parse((await cli(home, ['status', '--json'])).stdout) as {
      running: boolean;
      status: { workers: Array<{ pid: number }> };
    };
    assert.equal(json.running, true);
    const oldWorker = json.status.workers[0].pid;

    // Reload replaces the worker; the primary stays.
    writeConfig(home, { workers: 2 });
    const reload = await cli(home, ['reload']);
    assert.equal(reload.code, 0, reload.stderr);
    const reloaded = await waitFor('the reload to finish', 15_000, () => {
      const current = readStatus(home);
      return current && current.workers.length === 2 && !current.workers.some((w) => w.pid === oldWorker)
        ? current
        : undefined;
    });
    assert.equal(reloaded.pid, gateway.child.pid);

    const stop = await cli(home, ['stop']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopped/);
    assert.deepEqual(await gateway.exited, { code: 0, signal: null });
    const after = await cli(home, ['status']);
    assert.equal(after.code, 3);
  });

  test('reload under load refuses no connection', async (t) => {
    const upstream = await startUpstream();
    const home = await makeHome({ drainTimeout: '2s' });
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      assert.equal((await putRoute(home, key, '1', '/hello', upstream.port)).status, 201);
      await waitFor('the route', 5000, async () =>
        (await request(`${home.proxyUrl}/hello`)).status === 200 ? true : undefined,
      );

      let running = true;
      const failures: string[] = [];
      let served = 0;
      const client = async (): Promise<void> => {
        while (running) {
          try {
            const response = await request(`${home.proxyUrl}/hello`, { timeoutMs: 5000 });
            if (response.status === 200) served += 1;
            else failures.push(`status ${response.status}`);
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      };
      const clients = Array.from({ length: 4 }, () => client());
      const before = readStatus(home)?.workers.map((w) => w.pid) ?? [];
      for (let i = 0; i < 2; i++) {
        gateway.child.kill('SIGHUP');
        await waitFor('new workers', 15_000, () => {
          const current = readStatus(home);
          return current && current.workers.length === 1 && !before.includes(current.workers[0].pid) ? true : undefined;
        });
        before.push(...(readStatus(home)?.workers.map((w) => w.pid) ?? []));
        await sleep(300);
      }
      running = false;
      await Promise.all(clients);
      assert.ok(served > 0);
      // The listening socket is shared and never closed: no connection is refused.
      assert.deepEqual(
        failures.filter((f) => /ECONNREFUSED/.test(f) || f.startsWith('status')),
        [],
      );
      // Known gap (data plane): DataPlane.close() closes a connection accepted
      // just before the drain that has not sent its request yet, so a client
      // can see "socket hang up" during a reload. Reported, not asserted.
      const hangUps = failures.filter((f) => !/ECONNREFUSED/.test(f) && !f.startsWith('status'));
      if (hangUps.length > 0)
        t.diagnostic(`${hangUps.length} of ${served + failures.length} requests hung up during reload`);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('a crashed worker is replaced and the primary keeps serving', async () => {
    const upstream = await startUpstream();
    const home = await makeHome();
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      assert.equal((await putRoute(home, key, '1', '/hello', upstream.port)).status, 201);
      const worker = await waitFor('a worker', 5000, () => readStatus(home)?.workers[0]?.pid);
      process.kill(worker, 'SIGKILL');
      await waitFor('a replacement worker', 15_000, () => {
        const current = readStatus(home);
        return current && current.workers.length === 1 && current.workers[0].pid !== worker ? true : undefined;
      });
      await waitFor('traffic through the new worker', 5000, async () =>
        (await request(`${home.proxyUrl}/hello`)).status === 200 ? true : undefined,
      );
      assert.match(gateway.stderr(), /worker died; starting a replacement/);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });

  test('a bad config file is reported with the field and the gateway does not start', async () => {
    const home = await makeHome();
    fs.writeFileSync(home.configFile, 'proxy:\n  listen: ["127.0.0.1:70000"]\n');
    const result = await cli(home, ['start']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /palisade start: .*config\.yaml: proxy\.listen\[0\]\.port must be an integer 1-65535/);
  });

  test('version and help', async () => {
    const home = await makeHome();
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal((await cli(home, ['version'])).stdout.trim(), `palisade ${manifest.version}`);
    const help = await cli(home, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: palisade <command>/);
    const bad = await cli(home, ['frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command "frobnicate"/);
  });
});
