import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAdmin, testCatalog, upstream, type Harness } from './harness';

async function expectError(
  admin: Harness,
  method: string,
  urlPath: string,
  body: unknown,
  message: string,
): Promise<void> {
  const reply = await admin.call(method, urlPath, body);
  assert.equal(reply.status, 400, `${method} ${urlPath}: ${reply.text}`);
  assert.deepEqual(reply.json, { error_msg: message });
}

describe('Admin API validation errors', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin({ plugins: testCatalog });
  });
  after(() => admin.close());

  const cases: Array<[string, string, unknown, string]> = [
    [
      'methods enum',
      '/routes/1',
      { uri: '/a', upstream, methods: ['GET', 'FOO'] },
      'invalid configuration: property "methods" validation failed: failed to validate item 2: matches none of the enum values',
    ],
    [
      'additional property',
      '/routes/1',
      { uri: '/a', upstream, invalid_field: 1 },
      'invalid configuration: additional properties forbidden, found invalid_field',
    ],
    [
      'minimum',
      '/upstreams/1',
      { ...upstream, retries: -1 },
      'invalid configuration: property "retries" validation failed: expected -1 to be at least 0',
    ],
    [
      'uri or uris required',
      '/routes/1',
      { upstream },
      'invalid configuration: object matches none of the required: ["uri"] or ["uris"]',
    ],
    [
      'empty uri',
      '/routes/1',
      { uri: '', upstream },
      'invalid configuration: property "uri" validation failed: string too short, expected at least 1, got 0',
    ],
    [
      'uri type',
      '/routes/1',
      { uri: 1, upstream },
      'invalid configuration: property "uri" validation failed: wrong type: expected string, got number',
    ],
    [
      'host and hosts',
      '/routes/1',
      { uri: '/a', upstream, host: 'a.com', hosts: ['b.com'] },
      'only one of host or hosts is allowed',
    ],
    ['uri and uris', '/routes/1', { uri: '/a', uris: ['/b'], upstream }, 'only one of uri or uris is allowed'],
    [
      'remote_addr and remote_addrs',
      '/routes/1',
      { uri: '/a', upstream, remote_addr: '10.0.0.1', remote_addrs: ['10.0.0.2'] },
      'only one of remote_addr or remote_addrs is allowed',
    ],
    [
      'vars operator',
      '/routes/1',
      { uri: '/a', upstream, vars: [['arg_name', '=', 'json']] },
      "failed to validate the 'vars' expression: invalid operator '='",
    ],
    ['chash without key', '/upstreams/1', { ...upstream, type: 'chash' }, 'missing key'],
    ['chash without key, inline', '/routes/1', { uri: '/a', upstream: { ...upstream, type: 'chash' } }, 'missing key'],
    [
      'pass_host rewrite',
      '/upstreams/1',
      { ...upstream, pass_host: 'rewrite' },
      "`upstream_host` can't be empty when `pass_host` is `rewrite`",
    ],
    ['unknown plugin', '/routes/1', { uri: '/a', upstream, plugins: { x: {} } }, 'unknown plugin [x]'],
    [
      'plugin config',
      '/routes/1',
      { uri: '/a', upstream, plugins: { 'limit-req': { rate: 0 } } },
      'failed to check the configuration of plugin limit-req err: property "rate" is required',
    ],
    [
      'consumer plugin config',
      '/consumers/jack',
      { plugins: { 'key-auth': {} } },
      'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required',
    ],
    [
      'missing upstream',
      '/routes/1',
      { uri: '/a', upstream_id: 9 },
      'failed to fetch upstream info by upstream id [9], response code: 404',
    ],
    [
      'missing service',
      '/routes/1',
      { uri: '/a', service_id: 's9' },
      'failed to fetch service info by service id [s9], response code: 404',
    ],
    [
      'missing plugin config',
      '/routes/1',
      { uri: '/a', upstream, plugin_config_id: 'p9' },
      'failed to fetch plugin config info by plugin config id [p9], response code: 404',
    ],
    [
      'missing consumer group',
      '/consumers/jack',
      { group_id: 'g9' },
      'failed to fetch consumer group info by consumer group id [g9], response code: 404',
    ],
    [
      'timeout fields required',
      '/upstreams/1',
      { ...upstream, timeout: { connect: 1, send: 1 } },
      'invalid configuration: property "timeout" validation failed: property "read" is required',
    ],
    [
      'nodes or discovery',
      '/upstreams/1',
      { type: 'roundrobin' },
      'invalid configuration: object matches none of the required: ["nodes"] or ["service_name","discovery_type"]',
    ],
    [
      'node port range',
      '/upstreams/1',
      { nodes: [{ host: '127.0.0.1', port: 70000, weight: 1 }] },
      'invalid configuration: property "nodes" validation failed: object matches none of the required',
    ],
    [
      'upstream type enum',
      '/upstreams/1',
      { ...upstream, type: 'random' },
      'invalid configuration: property "type" validation failed: matches none of the enum values',
    ],
    [
      'consumer username pattern',
      '/consumers',
      { username: 'jack rose' },
      'invalid configuration: property "username" validation failed: failed to match pattern "^[a-zA-Z0-9_\\\\-]+$" with "jack rose"',
    ],
    [
      'status enum',
      '/routes/1',
      { uri: '/a', upstream, status: 2 },
      'invalid configuration: property "status" validation failed: matches none of the enum values',
    ],
    [
      'priority type',
      '/routes/1',
      { uri: '/a', upstream, priority: 1.5 },
      'invalid configuration: property "priority" validation failed: wrong type: expected integer, got number',
    ],
    [
      'duplicate methods',
      '/routes/1',
      { uri: '/a', upstream, methods: ['GET', 'GET'] },
      'invalid configuration: property "methods" validation failed: expected unique items but items 1 and 2 are equal',
    ],
    [
      'filter_func',
      '/routes/1',
      { uri: '/a', upstream, filter_func: 'function(vars) return true end' },
      'filter_func is not supported: Palisade does not execute Lua',
    ],
    [
      'health check bounds',
      '/upstreams/1',
      { ...upstream, checks: { active: { healthy: { successes: 0 } } } },
      'invalid configuration: property "checks" validation failed: property "active" validation failed: property "healthy" validation failed: property "successes" validation failed: expected 0 to be at least 1',
    ],
    [
      'ssl requires sni',
      '/ssls/1',
      { cert: 'c'.repeat(200), key: 'k'.repeat(200) },
      'invalid configuration: object matches none of the required: ["sni","key","cert"] or ["snis","key","cert"]',
    ],
  ];

  for (const [name, urlPath, body, message] of cases) {
    it(name, () => expectError(admin, 'PUT', urlPath, body, message));
  }

  it('rejects hosts with a wildcard that is not leading, or with control characters', async () => {
    for (const host of ['a.*.com', 'a\tb.com', 'a b.com', 'a\u0001.com']) {
      const reply = await admin.call('PUT', '/routes/1', { uri: '/a', upstream, host });
      assert.equal(reply.status, 400, JSON.stringify(host));
      assert.match(
        String(reply.json.error_msg),
        /^invalid configuration: property "host" validation failed: failed to match pattern/,
      );
    }
    const ok = await admin.call('PUT', '/routes/1', {
      uri: '/a',
      upstream,
      hosts: ['*.example.com', 'api.example.com'],
    });
    assert.equal(ok.status, 201);
  });

  it('rejects uris that do not start with / or contain whitespace', async () => {
    for (const uri of ['a', '/a b', '/a\tb', '/a\nb']) {
      const reply = await admin.call('PUT', '/routes/2', { uri, upstream });
      assert.equal(reply.status, 400, JSON.stringify(uri));
      assert.match(String(reply.json.error_msg), /^invalid configuration: property "uri" validation failed/);
    }
  });

  it('checks remote_addr as an address or CIDR', async () => {
    const bad = await admin.call('PUT', '/routes/3', { uri: '/a', upstream, remote_addr: '10.0.0.0/40' });
    assert.equal(bad.status, 400);
    const good = await admin.call('PUT', '/routes/3', { uri: '/a', upstream, remote_addrs: ['10.0.0.0/8', '::1'] });
    assert.equal(good.status, 201);
  });

  it('accepts a full upstream with health checks, keepalive pool and tls', async () => {
    const reply = await admin.call('PUT', '/upstreams/full', {
      type: 'chash',
      hash_on: 'header',
      key: 'X-User',
      nodes: [
        { host: '127.0.0.1', port: 8080, weight: 1, priority: 1, metadata: { zone: 'a' } },
        { host: 'backend.local', port: 8081, weight: 0 },
      ],
      retries: 2,
      retry_timeout: 1.5,
      timeout: { connect: 1, send: 2, read: 3 },
      pass_host: 'rewrite',
      upstream_host: 'internal.example.com',
      scheme: 'https',
      keepalive_pool: { size: 10, idle_timeout: 5, requests: 100 },
      checks: {
        active: { type: 'http', http_path: '/health', healthy: { interval: 2, successes: 1 } },
        passive: { unhealthy: { http_statuses: [500, 502], http_failures: 3 } },
      },
      labels: { team: 'core' },
    });
    assert.equal(reply.status, 201, reply.text);
  });

  it('refuses references, and deletes still in use unless forced', async () => {
    await admin.call('PUT', '/upstreams/u1', upstream);
    await admin.call('PUT', '/services/s1', { upstream_id: 'u1' });
    await admin.call('PUT', '/plugin_configs/p1', { plugins: {} });
    await admin.call('PUT', '/consumer_groups/g1', { plugins: {} });
    assert.equal(
      (await admin.call('PUT', '/routes/r1', { uri: '/r', service_id: 's1', plugin_config_id: 'p1' })).status,
      201,
    );
    assert.equal((await admin.call('PUT', '/routes/r2', { uri: '/r2', upstream_id: 'u1' })).status, 201);
    assert.equal((await admin.call('PUT', '/consumers/jack', { group_id: 'g1' })).status, 201);

    await expectError(
      admin,
      'DELETE',
      '/upstreams/u1',
      undefined,
      'can not delete this upstream, route [r2] is still using it now',
    );
    assert.equal((await admin.call('DELETE', '/routes/r2')).status, 200);
    await expectError(
      admin,
      'DELETE',
      '/upstreams/u1',
      undefined,
      'can not delete this upstream, service [s1] is still using it now',
    );
    await expectError(
      admin,
      'DELETE',
      '/plugin_configs/p1',
      undefined,
      'can not delete this plugin config, route [r1] is still using it now',
    );
    await expectError(
      admin,
      'DELETE',
      '/consumer_groups/g1',
      undefined,
      'can not delete this consumer group, consumer [jack] is still using it now',
    );

    const forced = await admin.call('DELETE', '/upstreams/u1?force=true');
    assert.equal(forced.status, 200);
    assert.deepEqual(forced.json, { deleted: '1', key: '/apisix/upstreams/u1' });
  });

  it('refuses to delete a service used by a route', async () => {
    await admin.call('PUT', '/services/s2', { upstream });
    await admin.call('PUT', '/routes/r3', { uri: '/r3', service_id: 's2' });
    await expectError(
      admin,
      'DELETE',
      '/services/s2',
      undefined,
      'can not delete this service directly, route [r3] is still using it now',
    );
  });
});

describe('SSL certificates', () => {
  let admin: Harness;
  let dir: string;
  let cert = '';
  let key = '';
  let otherKey = '';
  let haveOpenssl = true;

  before(async () => {
    admin = await startAdmin();
    dir = mkdtempSync(path.join(tmpdir(), 'palisade-ssl-'));
    try {
      const make = (name: string) =>
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-days',
            '1',
            '-subj',
            '/CN=test.com',
            '-keyout',
            path.join(dir, `${name}.key`),
            '-out',
            path.join(dir, `${name}.crt`),
          ],
          { stdio: 'ignore', timeout: 20000 },
        );
      make('a');
      make('b');
      cert = readFileSync(path.join(dir, 'a.crt'), 'utf8');
      key = readFileSync(path.join(dir, 'a.key'), 'utf8');
      otherKey = readFileSync(path.join(dir, 'b.key'), 'utf8');
    } catch {
      haveOpenssl = false;
    }
  });
  after(async () => {
    await admin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores a matching cert and key', async (t) => {
    if (!haveOpenssl) return t.skip('openssl is not available');
    const reply = await admin.call('PUT', '/ssls/1', { cert, key, snis: ['test.com'] });
    assert.equal(reply.status, 201, reply.text);
  });

  it('refuses a key that does not belong to the cert', async (t) => {
    if (!haveOpenssl) return t.skip('openssl is not available');
    const reply = await admin.call('PUT', '/ssls/2', { cert, key: otherKey, sni: 'test.com' });
    assert.equal(reply.status, 400);
    assert.match(String(reply.json.error_msg), /^failed to match cert and key/);
  });

  it('refuses text that is not PEM', async () => {
    const reply = await admin.call('PUT', '/ssls/3', { cert: 'x'.repeat(200), key: 'y'.repeat(200), sni: 'test.com' });
    assert.equal(reply.status, 400);
    assert.match(String(reply.json.error_msg), /^failed to parse cert/);
  });
});
