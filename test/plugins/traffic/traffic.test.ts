import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadBackend } from '../../../src/native';
import { openSharedDict, type SharedDict } from '../../../src/native/shdict';
import apiBreaker, { API_BREAKER_DICT } from '../../../src/plugins/builtin/api-breaker';
import faultInjection from '../../../src/plugins/builtin/fault-injection';
import limitConn, { LIMIT_CONN_DICT } from '../../../src/plugins/builtin/limit-conn';
import limitReq, { LIMIT_REQ_DICT } from '../../../src/plugins/builtin/limit-req';
import requestId from '../../../src/plugins/builtin/request-id';
import trafficSplit from '../../../src/plugins/builtin/traffic-split';
import type { PluginExit } from '../../../src/plugins/types';
import { checkPluginConf, compilePluginConf, testContext, testEnv, type TestRequest } from '../support/test-context';

const dir = mkdtempSync(path.join(tmpdir(), 'palisade-traffic-'));
const dicts: Record<string, SharedDict> = {};

before(() => {
  const backend = loadBackend('js');
  for (const name of [LIMIT_REQ_DICT, LIMIT_CONN_DICT, API_BREAKER_DICT]) {
    dicts[name] = openSharedDict(backend, name, 1 << 20, { path: path.join(dir, name), fresh: true });
  }
});

after(() => {
  for (const dict of Object.values(dicts)) dict.close();
  rmSync(dir, { recursive: true, force: true });
});

const env = () => testEnv({ dicts });
const ctxOf = (request: TestRequest = {}) => testContext({ dicts, ...request });

describe('limit-req', () => {
  test('nodelay: rate + burst pass, the next is rejected with rejected_code and rejected_msg', async () => {
    const compiled = compilePluginConf(
      limitReq,
      { rate: 1, burst: 2, key: 'remote_addr', nodelay: true, rejected_code: 429, rejected_msg: 'too fast' },
      env(),
    );
    for (let i = 0; i < 3; i++) {
      assert.equal(await limitReq.access?.(compiled, ctxOf({ routeId: 'req1' })), undefined, `request ${i}`);
    }
    const rejected = (await limitReq.access?.(compiled, ctxOf({ routeId: 'req1' }))) as PluginExit;
    assert.deepEqual([rejected.status, rejected.body], [429, { error_msg: 'too fast' }]);
    // Another key is not limited.
    assert.equal(await limitReq.access?.(compiled, ctxOf({ routeId: 'req1', remoteAddr: '10.9.9.9' })), undefined);
  });

  test('excess within burst is delayed to the rate', async () => {
    const compiled = compilePluginConf(limitReq, { rate: 20, burst: 5, key: 'remote_addr' }, env());
    assert.equal(await limitReq.access?.(compiled, ctxOf({ routeId: 'req2' })), undefined);
    const started = Date.now();
    assert.equal(await limitReq.access?.(compiled, ctxOf({ routeId: 'req2' })), undefined);
    // About 1/20 s: bounded loosely, this is not a timing test.
    assert.ok(Date.now() - started >= 20, 'the second request waited');
  });

  test('misconfiguration: required fields, rate > 0, redis policies not yet', () => {
    assert.equal(checkPluginConf(limitReq, { rate: 1, burst: 0 }).ok, false);
    assert.equal(checkPluginConf(limitReq, { rate: 0, burst: 0, key: 'remote_addr' }).ok, false);
    const redis = checkPluginConf(limitReq, {
      rate: 1,
      burst: 0,
      key: 'remote_addr',
      policy: 'redis',
      redis_host: 'ab',
    });
    assert.equal(redis.ok, false);
  });
});

describe('limit-conn', () => {
  test('counts concurrent requests, rejects beyond conn + burst, counts out in log', async () => {
    const compiled = compilePluginConf(
      limitConn,
      { conn: 1, burst: 1, default_conn_delay: 0.01, key: 'remote_addr', rejected_msg: 'busy' },
      env(),
    );
    const first = ctxOf({ routeId: 'conn1' });
    assert.equal(await limitConn.access?.(compiled, first), undefined);
    const second = ctxOf({ routeId: 'conn1' });
    assert.equal(await limitConn.access?.(compiled, second), undefined); // delayed, within burst
    const third = ctxOf({ routeId: 'conn1' });
    const rejected = (await limitConn.access?.(compiled, third)) as PluginExit;
    assert.deepEqual([rejected.status, rejected.body], [503, { error_msg: 'busy' }]);
    await limitConn.log?.(compiled, third); // a rejected request was never counted in
    await limitConn.log?.(compiled, first);
    await limitConn.log?.(compiled, second);
    assert.equal(await limitConn.access?.(compiled, ctxOf({ routeId: 'conn1' })), undefined);
  });

  test('misconfiguration: required fields', () => {
    assert.equal(checkPluginConf(limitConn, { conn: 1, burst: 0, key: 'remote_addr' }).ok, false);
    assert.equal(checkPluginConf(limitConn, { conn: 0, burst: 0, default_conn_delay: 1, key: 'x' }).ok, false);
  });
});

describe('traffic-split', () => {
  const canary = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };

  test('weights split requests; an entry without upstream keeps the route upstream', async () => {
    const compiled = compilePluginConf(trafficSplit, {
      rules: [{ weighted_upstreams: [{ upstream: canary, weight: 1 }, { weight: 3 }] }],
    });
    let toCanary = 0;
    for (let i = 0; i < 40; i++) {
      const ctx = testContext();
      await trafficSplit.access?.(compiled, ctx);
      if (ctx.upstream !== undefined) toCanary++;
    }
    assert.equal(toCanary, 10);
  });

  test('match vars pick the rule; the first matching rule wins; upstream_id is passed as an id', async () => {
    const compiled = compilePluginConf(trafficSplit, {
      rules: [
        {
          match: [{ vars: [['arg_name', '==', 'jack']] }, { vars: [['http_x_beta', '==', '1']] }],
          weighted_upstreams: [{ upstream_id: 7 }],
        },
        { match: [{ vars: [['arg_name', '==', 'rose']] }], weighted_upstreams: [{ upstream: canary }] },
      ],
    });
    const jack = testContext({ uri: '/?name=jack' });
    await trafficSplit.access?.(compiled, jack);
    assert.equal(jack.upstream, '7');
    const beta = testContext({ headers: { 'x-beta': '1' } });
    await trafficSplit.access?.(compiled, beta);
    assert.equal(beta.upstream, '7');
    const rose = testContext({ uri: '/?name=rose' });
    await trafficSplit.access?.(compiled, rose);
    assert.ok(typeof rose.upstream === 'object');
    assert.deepEqual(rose.upstream.nodes, canary.nodes);
    const nobody = testContext({ uri: '/?name=tom' });
    await trafficSplit.access?.(compiled, nobody);
    assert.equal(nobody.upstream, undefined);
  });

  test('misconfiguration: bad vars, both upstream and upstream_id, too many upstreams', () => {
    const badVars = checkPluginConf(trafficSplit, {
      rules: [{ match: [{ vars: [['arg_a', 'nope', 1]] }], weighted_upstreams: [{ weight: 1 }] }],
    });
    assert.equal(badVars.ok, false);
    const both = checkPluginConf(trafficSplit, {
      rules: [{ weighted_upstreams: [{ upstream_id: '1', upstream: canary }] }],
    });
    assert.equal(both.ok, false);
    const many = checkPluginConf(trafficSplit, {
      rules: [{ weighted_upstreams: Array.from({ length: 21 }, () => ({ weight: 1 })) }],
    });
    assert.equal(many.ok, false);
  });
});

describe('api-breaker', () => {
  test('breaks after unhealthy.failures failures and answers break_response_code', async () => {
    const compiled = compilePluginConf(
      apiBreaker,
      {
        break_response_code: 502,
        break_response_body: 'breaker open',
        break_response_headers: [{ key: 'X-Breaker', value: 'open for $remote_addr' }],
        unhealthy: { http_statuses: [500, 503], failures: 2 },
        healthy: { http_statuses: [200], successes: 1 },
      },
      env(),
    );
    const request = { routeId: 'brk', uri: '/api', headers: { host: 'svc' } };
    assert.equal(await apiBreaker.access?.(compiled, ctxOf(request)), undefined);
    await apiBreaker.log?.(compiled, ctxOf({ ...request, status: 500 }));
    assert.equal(await apiBreaker.access?.(compiled, ctxOf(request)), undefined);
    await apiBreaker.log?.(compiled, ctxOf({ ...request, status: 503 }));
    const broken = ctxOf(request);
    const exit = (await apiBreaker.access?.(compiled, broken)) as PluginExit;
    assert.deepEqual([exit.status, exit.body], [502, 'breaker open']);
    assert.equal(exit.headers?.['X-Breaker'], 'open for 127.0.0.1');
    // The broken request's own log does not count as an upstream answer.
    await apiBreaker.log?.(compiled, broken);
    // Another path of the route is not broken.
    assert.equal(await apiBreaker.access?.(compiled, ctxOf({ ...request, uri: '/other' })), undefined);
    // A healthy answer (once the breaker lets one through) closes it.
    await apiBreaker.log?.(compiled, ctxOf({ ...request, status: 200 }));
    assert.equal(await apiBreaker.access?.(compiled, ctxOf(request)), undefined);
  });

  test('misconfiguration: break_response_code required, statuses in range', () => {
    assert.equal(checkPluginConf(apiBreaker, {}).ok, false);
    assert.equal(
      checkPluginConf(apiBreaker, { break_response_code: 502, unhealthy: { http_statuses: [404] } }).ok,
      false,
    );
    assert.equal(checkPluginConf(apiBreaker, { break_response_code: 502, max_breaker_sec: 2 }).ok, false);
  });
});

describe('fault-injection', () => {
  test('abort answers http_status with the body and headers, $vars resolved', async () => {
    const compiled = compilePluginConf(faultInjection, {
      abort: { http_status: 418, body: 'teapot for $remote_addr\n', headers: { 'X-Fault': '$arg_who' } },
    });
    const exit = (await faultInjection.rewrite?.(compiled, testContext({ uri: '/?who=me' }))) as PluginExit;
    assert.deepEqual([exit.status, exit.body, exit.headers], [418, 'teapot for 127.0.0.1\n', { 'X-Fault': 'me' }]);
  });

  test('vars and percentage decide which requests are hit', async () => {
    const compiled = compilePluginConf(faultInjection, {
      abort: { http_status: 403, vars: [[['arg_name', '==', 'jack']]] },
    });
    assert.equal(await faultInjection.rewrite?.(compiled, testContext({ uri: '/?name=rose' })), undefined);
    assert.equal(
      ((await faultInjection.rewrite?.(compiled, testContext({ uri: '/?name=jack' }))) as PluginExit).status,
      403,
    );
    const never = compilePluginConf(faultInjection, { abort: { http_status: 500, percentage: 0 } });
    for (let i = 0; i < 20; i++) assert.equal(await faultInjection.rewrite?.(never, testContext()), undefined);
  });

  test('delay waits duration seconds, then goes on', async () => {
    const compiled = compilePluginConf(faultInjection, { delay: { duration: 0.05 } });
    const started = Date.now();
    assert.equal(await faultInjection.rewrite?.(compiled, testContext()), undefined);
    assert.ok(Date.now() - started >= 45);
  });

  test('misconfiguration: empty, abort without status, bad vars', () => {
    assert.equal(checkPluginConf(faultInjection, {}).ok, false);
    assert.equal(checkPluginConf(faultInjection, { abort: { body: 'x' } }).ok, false);
    const bad = checkPluginConf(faultInjection, { abort: { http_status: 500, vars: [[['a', 'bogus-op', 1]]] } });
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.error, /^failed to create vars expression/);
  });
});

describe('request-id', () => {
  test('generates a uuid, sends it upstream and returns it; keeps an incoming id', async () => {
    const compiled = compilePluginConf(requestId, {});
    const ctx = testContext();
    await requestId.rewrite?.(compiled, ctx);
    const id = ctx.upstreamHeader('x-request-id') ?? '';
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await requestId.header_filter?.(compiled, ctx);
    assert.equal(ctx.responseHeader('x-request-id'), id);

    const incoming = testContext({ headers: { 'x-request-id': 'given-1' } });
    await requestId.rewrite?.(compiled, incoming);
    assert.equal(incoming.headerEdits.length, 0);
    await requestId.header_filter?.(compiled, incoming);
    assert.equal(incoming.responseHeader('x-request-id'), 'given-1');
  });

  test('the upstream header wins; include_in_response false; custom header name', async () => {
    const compiled = compilePluginConf(requestId, { header_name: 'X-Trace', include_in_response: false });
    const ctx = testContext();
    await requestId.rewrite?.(compiled, ctx);
    assert.ok(ctx.upstreamHeader('x-trace'));
    await requestId.header_filter?.(compiled, ctx);
    assert.equal(ctx.responseHeader('x-trace'), undefined);
    const upstreamSet = testContext({ responseHeaders: { 'x-request-id': 'from-upstream' } });
    const defaults = compilePluginConf(requestId, {});
    await requestId.rewrite?.(defaults, upstreamSet);
    await requestId.header_filter?.(defaults, upstreamSet);
    assert.equal(upstreamSet.responseHeader('x-request-id'), 'from-upstream');
  });

  test('algorithms: nanoid, range_id, ksuid, uuidv7', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ algorithm: 'nanoid' }, /^[A-Za-z0-9_-]{21}$/],
      [{ algorithm: 'range_id', range_id: { char_set: 'abcdef', length: 8 } }, /^[a-f]{8}$/],
      [{ algorithm: 'ksuid' }, /^[0-9A-Za-z]{27}$/],
      [{ algorithm: 'uuidv7' }, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/],
    ];
    for (const [conf, pattern] of cases) {
      const compiled = compilePluginConf(requestId, conf);
      const ctx = testContext();
      await requestId.rewrite?.(compiled, ctx);
      assert.match(ctx.upstreamHeader('x-request-id') ?? '', pattern, JSON.stringify(conf));
    }
  });

  test('misconfiguration: unknown algorithm, short range_id', () => {
    assert.equal(checkPluginConf(requestId, { algorithm: 'sequential' }).ok, false);
    assert.equal(checkPluginConf(requestId, { algorithm: 'range_id', range_id: { length: 3 } }).ok, false);
  });
});
