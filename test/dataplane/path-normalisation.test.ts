// A route-scoped restriction cannot be bypassed by spelling its path another
// way: routes match $uri (percent-decoded, slashes merged, dot segments
// resolved, as nginx builds it), so /%61dmin, //admin, /./admin and
// /x/../admin all reach the ip-restriction of /admin and not the catch-all
// beside it. What goes upstream stays the client's raw target, as in APISIX.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DataPlane } from '../../src/dataplane/server';
import { PluginLoader } from '../../src/plugins/loader';
import type { Route } from '../../src/schema/types';
import { availableBackends } from '../helpers/backends';
import { localUpstream, snapshot } from '../helpers/dataplane';
import { RawClient, type RawResponse } from '../helpers/http-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream';

const DENIED = { message: 'Your IP address is not allowed' };

async function get(port: number, target: string): Promise<RawResponse> {
  const client = await RawClient.connect(port);
  try {
    client.write(`GET ${target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`);
    return await client.read({ timeoutMs: 5000 });
  } finally {
    client.close();
  }
}

function json(res: RawResponse): unknown {
  return JSON.parse(res.body.toString());
}

for (const backend of availableBackends(['js', 'ffi', 'napi'])) {
  describe(`routes match the normalised path (${backend.name})`, () => {
    let upstream: TestUpstream;
    let varsUpstream: TestUpstream;
    let dataPlane: DataPlane;
    let port: number;

    before(async () => {
      upstream = await startUpstream({ name: 'main' });
      varsUpstream = await startUpstream({ name: 'vars' });
      const loader = new PluginLoader();
      loader.load();
      const up = localUpstream([upstream.port]);
      const routes = [
        { id: 'admin', uri: '/admin', plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'] } }, upstream: up },
        {
          id: 'by-uri',
          uri: '/vars/*',
          vars: [['uri', '==', '/vars/a b/c']],
          upstream: localUpstream([varsUpstream.port]),
        },
        {
          id: 'by-utf8-uri',
          uri: '/vars/*',
          vars: [
            ['uri', '==', '/vars/caf\u00e9'],
            ['real_request_uri', '==', '/vars/caf%C3%A9?x=1'],
          ],
          upstream: localUpstream([varsUpstream.port]),
        },
        { id: 'all', uri: '/*', upstream: up },
      ] as Route[];
      dataPlane = new DataPlane(backend, {
        listen: [{ host: '127.0.0.1', port: 0 }],
        plugins: { registry: loader.registry },
      });
      dataPlane.applyConfig(snapshot({ routes }));
      [{ port }] = await dataPlane.listen();
    });

    after(async () => {
      await dataPlane?.close(1000);
      await upstream?.close();
      await varsUpstream?.close();
    });

    it('every spelling of /admin meets its ip-restriction, and none reaches the upstream', async () => {
      const spellings = [
        '/admin',
        '/%61dmin',
        '/%61%64%6D%69%6E',
        '//admin',
        '/./admin',
        '/x/../admin',
        '/x/%2e%2e/admin',
        '/x%2F..%2Fadmin',
        '/admin#fragment',
        '/admin?x=1',
      ];
      for (const target of spellings) {
        const res = await get(port, target);
        assert.equal(res.status, 403, target);
        assert.deepEqual(json(res), DENIED, target);
      }
      assert.equal(upstream.requests.length, 0);
    });

    it('case stays significant: /ADMIN goes to the catch-all, and upstream gets it as sent', async () => {
      const res = await get(port, '/ADMIN');
      assert.equal(res.status, 200);
      assert.equal((json(res) as { url: string }).url, '/ADMIN');
    });

    it('forwards the raw target upstream, not the normalised one', async () => {
      const target = '/public/%61//b/./c/../d?q=%2e%2e';
      const res = await get(port, target);
      assert.equal(res.status, 200);
      assert.equal((json(res) as { url: string }).url, target);
    });

    it('gives route vars the normalised uri', async () => {
      const matched = await get(port, '/vars/a%20b//c');
      assert.equal(matched.status, 200);
      const body = json(matched) as { upstream: string; url: string };
      assert.deepEqual([body.upstream, body.url], ['vars', '/vars/a%20b//c']);
      const other = await get(port, '/vars/a%20b/d');
      assert.equal((json(other) as { upstream: string }).upstream, 'main');
      // uri is read as UTF-8, as config strings are; real_request_uri is the raw target, as in APISIX.
      const utf8 = await get(port, '/vars/caf%C3%A9?x=1');
      assert.equal((json(utf8) as { upstream: string }).upstream, 'vars');
    });

    it('refuses with 400 what nginx refuses: above the root, bad escapes, %00', async () => {
      const sent = upstream.requests.length;
      for (const target of ['/..', '/../admin', '/a/../..', '/%2e%2e/admin', '/%zz', '/admin%', '/a%00']) {
        const res = await get(port, target);
        assert.equal(res.status, 400, target);
        assert.equal(typeof (json(res) as { error_msg: unknown }).error_msg, 'string', target);
      }
      assert.equal(upstream.requests.length, sent);
    });

    it('answers 414 for a path that needs normalising and is longer than the parser keeps', async () => {
      const res = await get(port, `/x//${'a'.repeat(9000)}`);
      assert.equal(res.status, 414);
      assert.equal((json(res) as { error_msg: string }).error_msg, '414 Request-URI Too Large');
    });
  });
}
