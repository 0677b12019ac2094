// Hot reload through the whole gateway: two workers and the agent, a custom
// plugin directory, PUT /apisix/admin/plugins/reload. A changed plugin is
// served by its new code in every worker, a new one works without a restart,
// and a removed one's routes answer a clear 503 while the rest keep working.

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

function pluginSource(name: string, body: string): string {
  return `module.exports = {
  name: ${JSON.stringify(name)},
  version: '0.1',
  priority: 100,
  schema: { type: 'object' },
  access(conf, ctx) { return ctx.exit(200, ${body}); },
};
`;
}

describe('plugin hot reload in a running gateway (system)', { timeout: 90_000 }, () => {
  test('changed, added and removed plugins after PUT /plugins/reload', async () => {
    const home = await makeHome({ workers: 2, extra: ['plugin_dir: ./plugins'] });
    const plugins = path.join(home.dir, 'plugins');
    fs.mkdirSync(plugins);
    fs.writeFileSync(path.join(plugins, 'stamp.js'), pluginSource('stamp', '{ v: 1 }'));
    const upstream = await startUpstream();
    const gateway = await startGateway(home);
    try {
      const key = readAdminKey(home);
      const admin = (method: string, urlPath: string, body?: unknown) =>
        request(`${home.adminUrl}${urlPath}`, { method, headers: adminHeaders(key), body });
      const nodes = { [`127.0.0.1:${upstream.port}`]: 1 };
      const put = await admin('PUT', '/routes/stamp', {
        uri: '/stamp',
        plugins: { stamp: {} },
        upstream: { type: 'roundrobin', nodes },
      });
      assert.ok(put.status < 300, put.body);
      const bodies = async (uri: string): Promise<string[]> => {
        const results = await Promise.all(Array.from({ length: 8 }, () => request(`${home.proxyUrl}${uri}`)));
        return results.map((r) => `${r.status} ${r.body.trim()}`);
      };
      // The route reaches every worker through the config distribution.
      let seen: string[] = [];
      for (let i = 0; i < 50; i++) {
        seen = await bodies('/stamp');
        if (seen.every((line) => line === '200 {"v":1}')) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(new Set(seen), new Set(['200 {"v":1}']));

      // Changed: every worker serves the new code once reload answered.
      fs.writeFileSync(path.join(plugins, 'stamp.js'), pluginSource('stamp', '{ v: 2 }'));
      const reload = await admin('PUT', '/plugins/reload');
      assert.equal(reload.status, 200);
      assert.equal(reload.body, 'done');
      assert.deepEqual(new Set(await bodies('/stamp')), new Set(['200 {"v":2}']));

      // Added: unknown before the reload, working after it.
      fs.writeFileSync(path.join(plugins, 'fresh.js'), pluginSource('fresh', '"fresh"'));
      const early = await admin('PUT', '/routes/fresh', { uri: '/fresh', plugins: { fresh: {} }, upstream: { nodes } });
      assert.equal(early.status, 400);
      assert.deepEqual(JSON.parse(early.body), { error_msg: 'unknown plugin [fresh]' });
      await admin('PUT', '/plugins/reload');
      const late = await admin('PUT', '/routes/fresh', { uri: '/fresh', plugins: { fresh: {} }, upstream: { nodes } });
      assert.ok(late.status < 300, late.body);
      let fresh: string[] = [];
      for (let i = 0; i < 50; i++) {
        fresh = await bodies('/fresh');
        if (fresh.every((line) => line === '200 fresh')) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(new Set(fresh), new Set(['200 fresh']));

      // Removed: its route answers a clear 503; the others and the gateway keep working.
      fs.rmSync(path.join(plugins, 'stamp.js'));
      await admin('PUT', '/plugins/reload');
      assert.deepEqual(new Set(await bodies('/stamp')), new Set(['503 {"error_msg":"plugin stamp is not loaded"}']));
      assert.deepEqual(new Set(await bodies('/fresh')), new Set(['200 fresh']));
      const list = JSON.parse((await admin('GET', '/plugins/list')).body) as string[];
      assert.ok(list.includes('fresh') && !list.includes('stamp'));
      assert.equal((await admin('GET', '/plugins/reload')).status, 405);
    } finally {
      await stopGateway(gateway);
      await upstream.close();
    }
  });
});
