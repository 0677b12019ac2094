// The traffic plugins end to end: a DataPlane with the built-in plugins,
// routes carrying them, real upstream servers and (for limit-count redis) a
// real redis-server; accepted and rejected requests with APISIX's statuses,
// headers and bodies.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { closeAllRedis } from '../../../src/plugins/lib/redis';
import type { Route } from '../../../src/schema/types';
import { localUpstream } from '../../helpers/dataplane';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';
import { call, startPluginGateway, type PluginGateway } from './gateway';

let main: TestUpstream;
let canary: TestUpstream;
let failing: TestUpstream;
let slow: TestUpstream;
let redis: RedisServer;
let gateway: PluginGateway;

function route(id: string, uri: string, plugins: Record<string, unknown>, port = main.port): Route {
  return { id, uri, plugins, upstream: localUpstream([port]) } as Route;
}

before(async () => {
  main = await startUpstream({ name: 'main' });
  canary = await startUpstream({ name: 'canary' });
  failing = await startUpstream({
    handler: (req, res) => {
      const status = req.url?.includes('ok') ? 200 : 500;
      res.writeHead(status, { 'content-length': '2' });
      res.end('no');
    },
  });
  slow = await startUpstream({
    handler: (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-length': '4' });
        res.end('slow');
      }, 300);
    },
  });
  redis = await startRedis();
  gateway = await startPluginGateway({
    routes: [
      route('count', '/count', {
        'limit-count': { count: 2, time_window: 60, rejected_msg: 'Requests are too frequent' },
      }),
      route('count-code', '/count-code', {
        'limit-count': { count: 1, time_window: 60, rejected_code: 429, show_limit_quota_header: false },
      }),
      route('count-redis', '/count-redis', {
        'limit-count': { count: 2, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port },
      }),
      route('req', '/req', { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', nodelay: true } }),
      route(
        'conn',
        '/conn',
        { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_code: 429 } },
        slow.port,
      ),
      route('split', '/split', {
        'traffic-split': {
          rules: [
            {
              match: [{ vars: [['arg_canary', '==', '1']] }],
              weighted_upstreams: [{ upstream: localUpstream([canary.port]), weight: 1 }],
            },
            { weighted_upstreams: [{ upstream: localUpstream([canary.port]), weight: 1 }, { weight: 1 }] },
          ],
        },
      }),
      route(
        'breaker',
        '/breaker/*',
        {
          'api-breaker': {
            break_response_code: 502,
            break_response_body: '{"message":"breaker open"}\n',
            unhealthy: { http_statuses: [500], failures: 2 },
          },
        },
        failing.port,
      ),
      route('fault', '/fault', { 'fault-injection': { abort: { http_status: 403, body: 'Fault Injection!\n' } } }),
      route('fault-vars', '/fault-vars', {
        'fault-injection': { abort: { http_status: 401, body: 'no', vars: [[['arg_name', '==', 'jack']]] } },
      }),
      route('rid', '/rid', { 'request-id': {} }),
    ],
  });
});

after(async () => {
  await gateway?.close();
  closeAllRedis();
  await Promise.all([main?.close(), canary?.close(), failing?.close(), slow?.close(), redis?.close()]);
});

describe('limit-count end to end', () => {
  test('local: two pass with quota headers, the third is 503 with the message', async () => {
    const first = await call(gateway.port, '/count');
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-ratelimit-limit'], '2');
    assert.equal(first.headers['x-ratelimit-remaining'], '1');
    assert.equal(first.headers['x-ratelimit-reset'], '60');
    assert.equal((await call(gateway.port, '/count')).headers['x-ratelimit-remaining'], '0');
    const rejected = await call(gateway.port, '/count');
    assert.equal(rejected.status, 503);
    assert.deepEqual(rejected.json, { error_msg: 'Requests are too frequent' });
    assert.equal(rejected.headers['x-ratelimit-remaining'], '0');
  });

  test('local: rejected_code without a message, headers off', async () => {
    const first = await call(gateway.port, '/count-code');
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-ratelimit-limit'], undefined);
    const rejected = await call(gateway.port, '/count-code');
    assert.equal(rejected.status, 429);
  });

  test('redis: counts in a real Redis', async () => {
    assert.equal((await call(gateway.port, '/count-redis')).status, 200);
    const second = await call(gateway.port, '/count-redis');
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-ratelimit-remaining'], '0');
    const rejected = await call(gateway.port, '/count-redis');
    assert.equal(rejected.status, 503);
    assert.equal(rejected.headers['x-ratelimit-limit'], '2');
  });
});

describe('limit-req and limit-conn end to end', () => {
  test('limit-req: over the rate without burst is 503', async () => {
    assert.equal((await call(gateway.port, '/req')).status, 200);
    assert.equal((await call(gateway.port, '/req')).status, 503);
  });

  test('limit-conn: a second concurrent request is refused; after the first ends one is let in', async () => {
    const agent = new http.Agent({ keepAlive: false });
    const get = () =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: gateway.port, path: '/conn', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
    const first = get();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await get();
    assert.equal(second, 429);
    assert.equal(await first, 200);
    // The log phase counted the first out.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await get(), 200);
    agent.destroy();
  });
});

describe('traffic-split end to end', () => {
  test('matching vars go to the canary; otherwise weights split 1:1 with the route upstream', async () => {
    const before = canary.requests.length;
    for (let i = 0; i < 3; i++) assert.equal((await call(gateway.port, '/split?canary=1')).status, 200);
    assert.equal(canary.requests.length - before, 3);
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(((await call(gateway.port, '/split')).json as { upstream: string }).upstream);
    assert.deepEqual(seen.sort(), ['canary', 'canary', 'main', 'main']);
  });
});

describe('api-breaker end to end', () => {
  test('two 500s open the breaker: 502 with the body; another path still reaches the upstream', async () => {
    assert.equal((await call(gateway.port, '/breaker/a')).status, 500);
    assert.equal((await call(gateway.port, '/breaker/a')).status, 500);
    // The log phase runs after the answer.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const broken = await call(gateway.port, '/breaker/a');
    assert.equal(broken.status, 502);
    assert.deepEqual(broken.json, { message: 'breaker open' });
    assert.equal((await call(gateway.port, '/breaker/ok')).status, 200);
  });
});

describe('fault-injection and request-id end to end', () => {
  test('abort answers the status and body', async () => {
    const reply = await call(gateway.port, '/fault');
    assert.deepEqual([reply.status, reply.text], [403, 'Fault Injection!\n']);
    assert.equal((await call(gateway.port, '/fault-vars?name=rose')).status, 200);
    assert.equal((await call(gateway.port, '/fault-vars?name=jack')).status, 401);
  });

  test('request-id: generated, sent upstream and returned; an incoming id is kept', async () => {
    const reply = await call(gateway.port, '/rid');
    const id = reply.headers['x-request-id'];
    assert.match(String(id), /^[0-9a-f-]{36}$/);
    assert.equal((reply.json as { headers: Record<string, string> }).headers['x-request-id'], id);
    const kept = await call(gateway.port, '/rid', { headers: { 'X-Request-Id': 'abc-123' } });
    assert.equal(kept.headers['x-request-id'], 'abc-123');
  });
});
