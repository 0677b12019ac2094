// proxy.limits.plugin_release_grace reaches the workers' data plane: with a
// 300 ms grace, a route's replaced plugin configuration is released within
// seconds, where the default grace (at least 60 s) would hold it for a minute.
// Runs the real `palisade` CLI with a plugin_dir plugin whose release() writes
// the released configuration's tag to a file.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  adminHeaders,
  cleanup,
  makeHome,
  request,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type GatewayHome,
} from '../system/harness';

const ADMIN_KEY = 'release-grace-admin-key-0001';
const RELEASED_LOG = 'released.log';

after(async () => {
  await cleanup();
});

/** A plugin_dir plugin: compile() keeps the conf's tag, release() appends it to <home>/released.log. */
const RELEASE_MARK_PLUGIN = `'use strict';
const fs = require('node:fs');
const path = require('node:path');
module.exports = {
  name: 'release-mark',
  version: '0.1',
  priority: 1000,
  schema: { type: 'object', properties: { tag: { type: 'string' } }, required: ['tag'] },
  compile(conf) {
    return { tag: conf.tag };
  },
  release(compiled) {
    fs.appendFileSync(path.join(__dirname, '..', ${JSON.stringify(RELEASED_LOG)}), compiled.tag + '\\n');
  },
  access() {},
};
`;

function releasedTags(home: GatewayHome): string[] {
  const file = path.join(home.dir, RELEASED_LOG);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

describe('proxy.limits.plugin_release_grace in a running gateway', { timeout: 60_000 }, () => {
  it('releases a replaced plugin configuration after the configured grace', async (t) => {
    const home = await makeHome({ adminKey: ADMIN_KEY, extra: ['plugin_dir: ./plugins'] });
    const config = fs.readFileSync(home.configFile, 'utf8');
    assert.ok(config.startsWith('proxy:\n'), config);
    fs.writeFileSync(
      home.configFile,
      config.replace('proxy:\n', 'proxy:\n  limits: { plugin_release_grace: 300ms }\n'),
    );
    fs.mkdirSync(path.join(home.dir, 'plugins'));
    fs.writeFileSync(path.join(home.dir, 'plugins', 'release-mark.js'), RELEASE_MARK_PLUGIN);
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gateway = await startGateway(home);
    try {
      const putRoute = async (tag: string): Promise<void> => {
        const reply = await request(`${home.adminUrl}/routes/r1`, {
          method: 'PUT',
          headers: adminHeaders(ADMIN_KEY),
          body: {
            uri: '/r1',
            plugins: { 'release-mark': { tag } },
            upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstream.port}`]: 1 } },
          },
        });
        assert.ok(reply.status < 300, reply.body);
      };
      await putRoute('first');
      await waitFor('the route to serve', 10_000, async () =>
        (await request(`${home.proxyUrl}/r1`)).status === 200 ? true : undefined,
      );
      await putRoute('second');
      // Well under the default grace of at least 60 s.
      await waitFor('the first configuration to be released', 10_000, () =>
        releasedTags(home).includes('first') ? true : undefined,
      );
      assert.deepEqual(releasedTags(home), ['first'], 'the configuration the route still uses is kept');
      assert.equal((await request(`${home.proxyUrl}/r1`)).status, 200);
    } finally {
      await stopGateway(gateway);
    }
  });
});
