// Offload tasks after a plugin reload, through the whole gateway: a custom
// plugin whose access phase answers with what its offload task returns. After
// the file changes and PUT /apisix/admin/plugins/reload answers, the task runs
// the new code on pool threads that had already loaded the old file.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  adminHeaders,
  cleanup,
  makeHome,
  readAdminKey,
  request,
  startGateway,
  startUpstream,
  stopGateway,
} from '../../system/harness';

after(cleanup);

function pluginSource(stamp: string): string {
  return `module.exports = {
  name: 'stamp-task',
  version: '0.1',
  priority: 100,
  schema: { type: 'object' },
  tasks: { stamp: (payload) => Buffer.from(payload + ' ${stamp}') },
  access(conf, ctx) {
    return ctx.offload('stamp', 'task').then((result) => ctx.exit(200, Buffer.from(result).toString()));
  },
};
`;
}

describe('offload tasks after a plugin reload (system)', { timeout: 60_000 }, () => {
  test('a task sent after PUT /plugins/reload runs the changed plugin file', async () => {
    const home = await makeHome({ workers: 1, extra: ['plugin_dir: ./plugins'] });
    const plugins = path.join(home.dir, 'plugins');
    fs.mkdirSync(plugins);
    fs.writeFileSync(path.join(plugins, 'stamp-task.js'), pluginSource('v1'));
    const upstream = await startUpstream();
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      const admin = (method: string, urlPath: string, body?: unknown) =>
        request(`${home.adminUrl}${urlPath}`, { method, headers: adminHeaders(key), body });
      const put = await admin('PUT', '/routes/stamp', {
        uri: '/stamp',
        plugins: { 'stamp-task': {} },
        upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } },
      });
      assert.ok(put.status < 300, put.body);
      // Several at once, so more than one pool thread loads v1.
      const bodies = async (): Promise<Set<string>> => {
        const results = await Promise.all(Array.from({ length: 6 }, () => request(`${home.proxyUrl}/stamp`)));
        return new Set(results.map((r) => `${r.status} ${r.body.trim()}`));
      };
      let seen = new Set<string>();
      for (let i = 0; i < 50; i++) {
        seen = await bodies();
        if (seen.size === 1 && seen.has('200 task v1')) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(seen, new Set(['200 task v1']));

      fs.writeFileSync(path.join(plugins, 'stamp-task.js'), pluginSource('v2'));
      const reload = await admin('PUT', '/plugins/reload');
      assert.equal(reload.status, 200);
      assert.deepEqual(await bodies(), new Set(['200 task v2']));
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });
});
