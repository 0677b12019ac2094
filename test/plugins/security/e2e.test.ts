// The security plugins end to end over real sockets, with APISIX's statuses
// and bodies, and their misconfigurations refused by the Admin API.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { RegistryCatalog } from '../../../src/plugins/catalog';
import { PluginLoader } from '../../../src/plugins/loader';
import type { Route } from '../../../src/schema/types';
import { startAdmin, type Harness } from '../../admin/harness';
import { localUpstream } from '../../helpers/dataplane';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';
import { call, startPluginGateway, type PluginGateway } from '../traffic/gateway';

let upstream: TestUpstream;
let gateway: PluginGateway;

function route(id: string, uri: string, plugins: Record<string, unknown>, extra: Partial<Route> = {}): Route {
  return { id, uri, plugins, upstream: localUpstream([upstream.port]), ...extra } as Route;
}

before(async () => {
  upstream = await startUpstream({ name: 'main' });
  gateway = await startPluginGateway({
    routes: [
      route('ip-allow', '/ip-allow', { 'ip-restriction': { whitelist: ['127.0.0.0/24'] } }),
      route('ip-deny', '/ip-deny', { 'ip-restriction': { blacklist: ['127.0.0.1'] } }),
      route('real-ip', '/real-ip', {
        'real-ip': { source: 'http_x_real_ip', trusted_addresses: ['127.0.0.1'] },
        'ip-restriction': { whitelist: ['10.0.0.0/8'] },
      }),
      route('ua', '/ua', { 'ua-restriction': { denylist: ['bad-bot'] } }),
      route('referer', '/referer', { 'referer-restriction': { whitelist: ['*.example.com'], bypass_missing: true } }),
      route('blocker', '/blocker/*', {
        'uri-blocker': { block_rules: ['\\.\\./', 'passwd'], rejected_msg: 'access is not allowed' },
      }),
      route('cors', '/cors', { cors: { allow_origins: 'http://a.com', allow_methods: 'GET,POST', max_age: 10 } }, {
        methods: ['GET', 'POST', 'OPTIONS'],
      } as Partial<Route>),
      route('csrf', '/csrf', { csrf: { key: 'secret-key' } }, { methods: ['GET', 'POST'] } as Partial<Route>),
    ],
  });
});

after(async () => {
  await gateway?.close();
  await upstream?.close();
});

describe('ip-restriction and real-ip end to end', () => {
  test('whitelist and blacklist on the client address', async () => {
    assert.equal((await call(gateway.port, '/ip-allow')).status, 200);
    const refused = await call(gateway.port, '/ip-deny');
    assert.equal(refused.status, 403);
    assert.deepEqual(refused.json, { message: 'Your IP address is not allowed' });
  });

  test('real-ip replaces the address ip-restriction sees, and the one sent upstream', async () => {
    assert.equal((await call(gateway.port, '/real-ip')).status, 403);
    const allowed = await call(gateway.port, '/real-ip', { headers: { 'X-Real-IP': '10.1.2.3' } });
    assert.equal(allowed.status, 200);
    assert.equal((await call(gateway.port, '/real-ip', { headers: { 'X-Real-IP': '8.8.8.8' } })).status, 403);
  });
});

describe('ua-restriction, referer-restriction and uri-blocker end to end', () => {
  test('ua-restriction', async () => {
    assert.equal((await call(gateway.port, '/ua', { headers: { 'User-Agent': 'curl/8' } })).status, 200);
    const refused = await call(gateway.port, '/ua', { headers: { 'User-Agent': 'a bad-bot/1.0' } });
    assert.deepEqual([refused.status, refused.json], [403, { message: 'Not allowed' }]);
  });

  test('referer-restriction', async () => {
    assert.equal((await call(gateway.port, '/referer')).status, 200);
    const ok = await call(gateway.port, '/referer', { headers: { Referer: 'https://www.example.com/page' } });
    assert.equal(ok.status, 200);
    const refused = await call(gateway.port, '/referer', { headers: { Referer: 'https://evil.org/' } });
    assert.deepEqual([refused.status, refused.json], [403, { message: 'Your referer host is not allowed' }]);
  });

  test('uri-blocker', async () => {
    assert.equal((await call(gateway.port, '/blocker/fine')).status, 200);
    const blocked = await call(gateway.port, '/blocker/x?f=/etc/passwd');
    assert.deepEqual([blocked.status, blocked.json], [403, { error_msg: 'access is not allowed' }]);
    // Rules see APISIX's request_uri (the normalised path plus the query), so escapes do not dodge them.
    const escaped = await call(gateway.port, '/blocker/pa%73swd');
    assert.deepEqual([escaped.status, escaped.json], [403, { error_msg: 'access is not allowed' }]);
  });
});

describe('cors and csrf end to end', () => {
  test('preflight answered 200 with the headers; a GET from the origin gets them too', async () => {
    const preflight = await call(gateway.port, '/cors', { method: 'OPTIONS', headers: { Origin: 'http://a.com' } });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers['access-control-allow-origin'], 'http://a.com');
    assert.equal(preflight.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(preflight.headers['access-control-max-age'], '10');
    assert.equal(preflight.headers.vary, 'Origin');
    assert.equal(upstream.requests.filter((seen) => seen.method === 'OPTIONS').length, 0);
    const get = await call(gateway.port, '/cors', { headers: { Origin: 'http://a.com' } });
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], 'http://a.com');
    assert.equal(get.headers.vary, 'Origin');
    const other = await call(gateway.port, '/cors', { headers: { Origin: 'http://b.com' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });

  test('csrf: GET sets the token cookie; POST needs it in header and cookie', async () => {
    const get = await call(gateway.port, '/csrf');
    assert.equal(get.status, 200);
    const setCookie = String(get.headers['set-cookie']);
    const token = /apisix-csrf-token=([^;]+)/.exec(setCookie)?.[1] ?? '';
    assert.ok(token.length > 0, setCookie);
    const bare = await call(gateway.port, '/csrf', { method: 'POST' });
    assert.deepEqual([bare.status, bare.json], [401, { error_msg: 'no csrf token in headers' }]);
    const noCookie = await call(gateway.port, '/csrf', { method: 'POST', headers: { 'apisix-csrf-token': token } });
    assert.deepEqual([noCookie.status, noCookie.json], [401, { error_msg: 'no csrf cookie' }]);
    const ok = await call(gateway.port, '/csrf', {
      method: 'POST',
      headers: { 'apisix-csrf-token': token, Cookie: `apisix-csrf-token=${token}` },
    });
    assert.equal(ok.status, 200);
  });
});

describe('misconfigured security and traffic plugins through the Admin API', () => {
  let admin: Harness;
  before(async () => {
    const loader = new PluginLoader();
    loader.load();
    admin = await startAdmin({ plugins: new RegistryCatalog(() => loader.registry) });
  });
  after(() => admin.close());

  const upstreamConf = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };

  test('valid configurations are accepted', async () => {
    for (const plugins of [
      { 'ip-restriction': { whitelist: ['10.0.0.0/8'] } },
      { 'ua-restriction': { allowlist: ['^curl'] } },
      { 'referer-restriction': { blacklist: ['evil.com'] } },
      { 'uri-blocker': { block_rules: ['^/x'] } },
      { cors: { allow_origins: 'http://a.com', allow_credential: true, allow_methods: 'GET', allow_headers: 'X' } },
      { 'real-ip': { source: 'http_x_forwarded_for', recursive: true, trusted_addresses: ['10.0.0.0/8'] } },
      { csrf: { key: 'k' } },
      { 'limit-count': { count: 1, time_window: 1 } },
      { 'limit-count': { count: 1, time_window: 1, policy: 'redis', redis_host: '127.0.0.1' } },
      { 'limit-req': { rate: 1, burst: 1, key: 'remote_addr' } },
      { 'limit-conn': { conn: 1, burst: 1, default_conn_delay: 0.1, key: 'remote_addr' } },
      { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: '1', weight: 1 }] }] } },
      { 'api-breaker': { break_response_code: 502 } },
      { 'fault-injection': { delay: { duration: 1 } } },
      { 'request-id': { algorithm: 'nanoid' } },
    ]) {
      const reply = await admin.call('PUT', '/routes/1', { uri: '/x', plugins, upstream: upstreamConf });
      assert.ok(reply.status === 200 || reply.status === 201, `${JSON.stringify(plugins)}: ${reply.text}`);
    }
  });

  test('invalid configurations are refused with APISIX error bodies', async () => {
    const cases: [string, unknown, string][] = [
      ['ip-restriction', { whitelist: ['300.1.1.1'] }, 'invalid ip address: 300.1.1.1'],
      ['ip-restriction', {}, 'value should match only one schema, but matches none'],
      ['ua-restriction', { denylist: ['(('] }, 'invalid denylist: (('],
      [
        'referer-restriction',
        { whitelist: [] },
        'property "whitelist" validation failed: expect array to have at least 1 items',
      ],
      ['uri-blocker', { block_rules: ['(['] }, 'failed to check regex error: invalid pattern (['],
      ['cors', { allow_credential: true }, "you can not set '*' for other option when 'allow_credential' is true"],
      ['real-ip', { trusted_addresses: ['10.0.0.0/8'] }, 'property "source" is required'],
      ['csrf', { expires: 10 }, 'property "key" is required'],
      ['limit-count', { count: 1 }, 'value should match only one schema, but matches none'],
      ['limit-count', { count: 1, time_window: 1, policy: 'redis' }, 'property "redis_host" is required'],
      ['limit-req', { rate: 1, burst: 1 }, 'property "key" is required'],
      ['limit-conn', { conn: 1, burst: 1, key: 'remote_addr' }, 'property "default_conn_delay" is required'],
      [
        'traffic-split',
        { rules: [{ weighted_upstreams: [{ weight: -1 }] }] },
        'property "rules" validation failed: failed to validate item 1: property "weighted_upstreams" validation ' +
          'failed: failed to validate item 1: property "weight" validation failed: expected -1 to be at least 0',
      ],
      [
        'api-breaker',
        { break_response_code: 100 },
        'property "break_response_code" validation failed: expected 100 to be at least 200',
      ],
      ['fault-injection', {}, 'expect object to have at least 1 properties'],
      ['request-id', { algorithm: 'nope' }, 'property "algorithm" validation failed: matches none of the enum values'],
    ];
    for (const [name, conf, error] of cases) {
      const reply = await admin.call('PUT', '/routes/1', {
        uri: '/x',
        plugins: { [name]: conf },
        upstream: upstreamConf,
      });
      assert.equal(reply.status, 400, `${name}: ${reply.text}`);
      assert.deepEqual(reply.json, { error_msg: `failed to check the configuration of plugin ${name} err: ${error}` });
    }
  });
});
