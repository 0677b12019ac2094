// Global rules on requests no route matched: APISIX runs them before its 404,
// so a global ip-restriction answers instead, and response phases (headers,
// the log phase) see the 404. Real sockets, the built-in plugins.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import { PluginLoader } from '../../../src/plugins/loader';
import type { GlobalRule, Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { localUpstream } from '../../helpers/dataplane';
import { rawRequest } from '../../helpers/http-client';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';

describe('global rules on requests no route matched', () => {
  let upstream: TestUpstream;
  let dataPlane: DataPlane;
  let port = 0;
  let version = 0;

  const apply = (globalRules: GlobalRule[]): void => {
    const routes: Route[] = [{ id: 'known', uri: '/known', upstream: localUpstream([upstream.port]) }];
    const snapshot: ConfigSnapshot = {
      version: ++version,
      routes,
      services: [],
      upstreams: [],
      consumers: [],
      consumer_groups: [],
      global_rules: globalRules,
      plugin_configs: [],
      plugin_metadata: [],
      ssls: [],
    };
    dataPlane.applyConfig(snapshot);
  };

  before(async () => {
    upstream = await startUpstream();
    const loader = new PluginLoader({ enabled: undefined, pluginDir: undefined, serverless: false });
    loader.load();
    dataPlane = new DataPlane(loadBackend('js'), {
      listen: [{ host: '127.0.0.1', port: 0 }],
      plugins: { registry: loader.registry },
    });
    apply([]);
    [{ port }] = await dataPlane.listen();
  });

  after(async () => {
    await dataPlane.close(1000);
    await upstream.close();
  });

  it('answers the plain 404 when there is no global rule', async () => {
    const res = await rawRequest(port, 'GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(res.body.toString()), { error_msg: '404 Route Not Found' });
  });

  it('runs response phases of global rules on the 404 (a request id is added)', async () => {
    apply([{ id: 'ids', plugins: { 'request-id': { header_name: 'X-Trace' } } }]);
    const res = await rawRequest(port, 'GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(res.body.toString()), { error_msg: '404 Route Not Found' });
    assert.match(String(res.headers['x-trace']), /^[0-9a-f-]{36}$/);
    assert.equal(res.headers['content-type'], 'application/json');
    const known = await rawRequest(port, 'GET /known HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(known.status, 200);
    assert.match(String(known.headers['x-trace']), /^[0-9a-f-]{36}$/);
  });

  it('lets a global rule answer before the 404 (ip-restriction denies the client)', async () => {
    apply([{ id: 'deny', plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'] } } }]);
    const res = await rawRequest(port, 'GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(res.status, 403);
    assert.deepEqual(JSON.parse(res.body.toString()), { message: 'Your IP address is not allowed' });
  });

  it('never proxies an unmatched request, whatever a global rule picks as upstream', async () => {
    apply([
      {
        id: 'split',
        plugins: {
          'traffic-split': {
            rules: [{ weighted_upstreams: [{ upstream: localUpstream([upstream.port]), weight: 1 }] }],
          },
        },
      },
    ]);
    const before = upstream.requests.length;
    const res = await rawRequest(port, 'GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(res.status, 404);
    assert.equal(upstream.requests.length, before);
  });
});
