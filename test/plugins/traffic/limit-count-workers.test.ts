// limit-count `local` is exact across workers: a 3-worker gateway started
// through the CLI, its shared dictionary `plugin-limit-count` on a native
// backend (one file every worker maps), and requests on fresh connections
// that the kernel spreads over the workers. Exactly `count` pass per window.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';

import { sharedLibraryPath } from '../../../src/native/paths';
import {
  adminHeaders,
  cleanup,
  makeHome,
  readAdminKey,
  readStatus,
  request,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
} from '../../system/harness';

const WORKERS = 3;
const COUNT = 40;
const REQUESTS = 100;

after(cleanup);

describe('limit-count local across workers (system)', { timeout: 120_000 }, () => {
  test(
    `exactly ${COUNT} of ${REQUESTS} requests pass with ${WORKERS} workers`,
    { skip: !existsSync(sharedLibraryPath) },
    async () => {
      const upstream = await startUpstream();
      const home = await makeHome({
        workers: WORKERS,
        backend: 'ffi',
        extra: ['shared_dicts:', '  plugin-limit-count: 1m'],
      });
      const gateway = await startGateway(home);
      try {
        await waitFor('all workers', 15_000, () => {
          const status = readStatus(home);
          return status && status.workers.length === WORKERS ? status : undefined;
        });
        const key = readAdminKey(home);
        const put = await request(`${home.adminUrl}/routes/limited`, {
          method: 'PUT',
          headers: adminHeaders(key),
          body: {
            uri: '/limited',
            plugins: {
              'limit-count': {
                count: COUNT,
                time_window: 60,
                key: 'limited',
                key_type: 'constant',
                rejected_code: 429,
              },
            },
            upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } },
          },
        });
        assert.equal(put.status, 201, put.body);
        const stored = await request(`${home.adminUrl}/routes/limited`, { headers: adminHeaders(key) });
        const version = (JSON.parse(stored.body) as { modifiedIndex: number }).modifiedIndex;
        const applied = await request(`${home.controlUrl}/v1/processes?version=${version}&wait_ms=5000`);
        assert.equal(applied.status, 200, applied.body);

        // Ten at a time on fresh connections (agent: false), so every worker takes a share.
        const statuses: number[] = [];
        const remaining: number[] = [];
        for (let sent = 0; sent < REQUESTS; sent += 10) {
          const batch = await Promise.all(Array.from({ length: 10 }, () => request(`${home.proxyUrl}/limited`)));
          for (const result of batch) {
            statuses.push(result.status);
            if (result.status === 200) remaining.push(Number(result.headers['x-ratelimit-remaining']));
          }
        }
        const passed = statuses.filter((status) => status === 200).length;
        const limited = statuses.filter((status) => status === 429).length;
        assert.deepEqual({ passed, limited }, { passed: COUNT, limited: REQUESTS - COUNT });
        // One counter: every accepted request saw a different remaining count, COUNT - 1 down to 0.
        assert.deepEqual(
          remaining.sort((a, b) => a - b),
          Array.from({ length: COUNT }, (_, i) => i),
        );
      } finally {
        await stopGateway(gateway);
        await upstream.close();
      }
    },
  );
});
