// must-show 4: a write the Admin API acknowledged survives `kill -9` of the
// whole gateway (primary and workers) in the middle of a burst of writes.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  adminHeaders,
  cleanup,
  killGroup,
  makeHome,
  putRoute,
  readAdminKey,
  request,
  sleep,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
} from './harness';

after(cleanup);

test('kill -9 during a burst of Admin API writes loses no acknowledged write', { timeout: 90_000 }, async () => {
  const upstream = await startUpstream();
  const home = await makeHome();
  try {
    const first = await startGateway(home);
    const key = readAdminKey(home);
    const headers = adminHeaders(key);

    const acknowledged = new Map<string, string>(); // route id -> uri
    const failed: string[] = [];
    let killed = false;
    let next = 0;
    const writer = async (): Promise<void> => {
      while (!killed) {
        const id = `r${next++}`;
        const uri = `/burst/${id}`;
        try {
          const response = await putRoute(home, key, id, uri, upstream.port);
          if (response.status === 200 || response.status === 201) acknowledged.set(id, uri);
          else failed.push(`${id}: ${response.status} ${response.body}`);
        } catch {
          // the connection died with the gateway: not acknowledged, so not owed
        }
      }
    };
    const writers = Array.from({ length: 16 }, () => writer());

    // Kill in the middle of the burst, once a good number of writes are in.
    await waitFor('acknowledged writes', 20_000, () => (acknowledged.size >= 150 ? true : undefined));
    killGroup(first.child, 'SIGKILL');
    killed = true;
    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL');
    await Promise.all(writers);
    assert.deepEqual(failed, [], 'no write was rejected before the kill');
    assert.ok(acknowledged.size >= 150);

    // The data dir has a stale pid file from the killed primary; start must cope.
    const second = await startGateway(home);
    try {
      const missing: string[] = [];
      const ids = [...acknowledged.keys()];
      for (let i = 0; i < ids.length; i += 20) {
        const batch = ids.slice(i, i + 20);
        const results = await Promise.all(batch.map((id) => request(`${home.adminUrl}/routes/${id}`, { headers })));
        results.forEach((result, j) => {
          const id = batch[j];
          if (result.status !== 200) {
            missing.push(`${id}: ${result.status}`);
            return;
          }
          const item = JSON.parse(result.body) as { value: { uri: string } };
          if (item.value.uri !== acknowledged.get(id)) missing.push(`${id}: uri ${item.value.uri}`);
        });
      }
      assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.size} acknowledged writes lost`);

      // And the restarted data plane routes them.
      const sample = [ids[0], ids[Math.floor(ids.length / 2)], ids[ids.length - 1]];
      for (const id of sample) {
        const uri = acknowledged.get(id) as string;
        const response = await waitFor(`traffic to ${uri}`, 5000, async () => {
          const result = await request(`${home.proxyUrl}${uri}`);
          return result.status === 200 ? result : undefined;
        });
        assert.equal(response.body, `upstream:${uri}`);
      }
    } finally {
      assert.equal((await stopGateway(second)).code, 0);
    }
    await sleep(0);
  } finally {
    await upstream.close();
  }
});
