import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadBackend } from '../../../src/native';
import { openSharedDict, type SharedDict } from '../../../src/native/shdict';
import limitCount, { LIMIT_COUNT_DICT } from '../../../src/plugins/builtin/limit-count';
import { closeAllRedis } from '../../../src/plugins/lib/redis';
import type { PluginExit } from '../../../src/plugins/types';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../../helpers/redis';
import { checkPluginConf, compilePluginConf, testContext, testEnv, type TestRequest } from '../support/test-context';

const dir = mkdtempSync(path.join(tmpdir(), 'palisade-limit-count-'));
let dict: SharedDict;

before(() => {
  dict = openSharedDict(loadBackend('js'), LIMIT_COUNT_DICT, 1 << 20, {
    path: path.join(dir, 'dict'),
    fresh: true,
  });
});

after(() => {
  dict.close();
  closeAllRedis();
  rmSync(dir, { recursive: true, force: true });
});

function compile(conf: Record<string, unknown>, metadata?: Record<string, unknown>) {
  return compilePluginConf(limitCount, conf, testEnv({ dicts: { [LIMIT_COUNT_DICT]: dict }, metadata }));
}

async function call(compiled: ReturnType<typeof compile>, request: TestRequest = {}) {
  const ctx = testContext({ dicts: { [LIMIT_COUNT_DICT]: dict }, ...request });
  const exit = (await limitCount.access?.(compiled, ctx)) as PluginExit | undefined;
  return { ctx, exit };
}

describe('limit-count schema', () => {
  test('count and time_window, or rules', () => {
    assert.equal(checkPluginConf(limitCount, { count: 2, time_window: 60 }).ok, true);
    assert.equal(checkPluginConf(limitCount, { rules: [{ count: 1, time_window: 1, key: '$remote_addr' }] }).ok, true);
    const missing = checkPluginConf(limitCount, { count: 2 });
    assert.equal(missing.ok, false);
    const zero = checkPluginConf(limitCount, { count: 0, time_window: 60 });
    assert.equal(zero.ok, false);
  });

  test('defaults are filled in', () => {
    const checked = checkPluginConf(limitCount, { count: 2, time_window: 60 });
    assert.ok(checked.ok);
    assert.deepEqual(
      {
        key: checked.conf.key,
        key_type: checked.conf.key_type,
        rejected_code: checked.conf.rejected_code,
        policy: checked.conf.policy,
        show_limit_quota_header: checked.conf.show_limit_quota_header,
      },
      { key: 'remote_addr', key_type: 'var', rejected_code: 503, policy: 'local', show_limit_quota_header: true },
    );
  });

  test('redis needs redis_host, redis-cluster needs nodes and a name', () => {
    const redis = checkPluginConf(limitCount, { count: 1, time_window: 1, policy: 'redis' });
    assert.equal(redis.ok, false);
    assert.match(redis.ok ? '' : redis.error, /redis_host/);
    const cluster = checkPluginConf(limitCount, {
      count: 1,
      time_window: 1,
      policy: 'redis-cluster',
      redis_cluster_nodes: ['127.0.0.1:1'],
    });
    assert.equal(cluster.ok, false);
    assert.match(cluster.ok ? '' : cluster.error, /redis_cluster_name/);
  });

  test('duplicate rule keys are refused', () => {
    const checked = checkPluginConf(limitCount, {
      rules: [
        { count: 1, time_window: 1, key: '$remote_addr' },
        { count: 2, time_window: 2, key: '$remote_addr' },
      ],
    });
    assert.deepEqual(checked, { ok: false, error: "duplicate key '$remote_addr' in rules" });
  });
});

describe('limit-count local', () => {
  test('counts down with quota headers, then rejects with 503 and the headers', async () => {
    const compiled = compile({ count: 2, time_window: 60, rejected_msg: 'slow down' });
    const first = await call(compiled, { routeId: 'r-local', remoteAddr: '10.0.0.1' });
    assert.equal(first.exit, undefined);
    assert.equal(first.ctx.responseHeader('x-ratelimit-limit'), '2');
    assert.equal(first.ctx.responseHeader('x-ratelimit-remaining'), '1');
    assert.equal(first.ctx.responseHeader('x-ratelimit-reset'), '60');
    const second = await call(compiled, { routeId: 'r-local', remoteAddr: '10.0.0.1' });
    assert.equal(second.exit, undefined);
    assert.equal(second.ctx.responseHeader('x-ratelimit-remaining'), '0');
    const third = await call(compiled, { routeId: 'r-local', remoteAddr: '10.0.0.1' });
    assert.equal(third.exit?.status, 503);
    assert.deepEqual(third.exit?.body, { error_msg: 'slow down' });
    assert.equal(third.exit?.headers?.['X-RateLimit-Remaining'], '0');
    assert.equal(third.exit?.headers?.['X-RateLimit-Limit'], '2');
    // Another client has its own window.
    const other = await call(compiled, { routeId: 'r-local', remoteAddr: '10.0.0.2' });
    assert.equal(other.exit, undefined);
  });

  test('without rejected_msg the exit has no body; rejected_code is used', async () => {
    const compiled = compile({ count: 1, time_window: 60, rejected_code: 429, show_limit_quota_header: false });
    assert.equal((await call(compiled, { routeId: 'r-code' })).exit, undefined);
    const rejected = await call(compiled, { routeId: 'r-code' });
    assert.equal(rejected.exit?.status, 429);
    assert.equal(rejected.exit?.body, undefined);
    assert.equal(rejected.exit?.headers, undefined);
  });

  test('the window resets after time_window', async () => {
    const compiled = compile({ count: 1, time_window: 1 });
    assert.equal((await call(compiled, { routeId: 'r-reset' })).exit, undefined);
    assert.equal((await call(compiled, { routeId: 'r-reset' })).exit?.status, 503);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await call(compiled, { routeId: 'r-reset' })).exit, undefined);
  });

  test('key_type var_combination and constant; a key without value falls back to remote_addr', async () => {
    const combined = compile({ count: 1, time_window: 60, key: '$http_x_user $arg_team', key_type: 'var_combination' });
    const jack = { routeId: 'r-comb', uri: '/?team=a', headers: { 'x-user': 'jack' } };
    assert.equal((await call(combined, jack)).exit, undefined);
    assert.equal((await call(combined, jack)).exit?.status, 503);
    assert.equal((await call(combined, { ...jack, uri: '/?team=b' })).exit, undefined);

    const constant = compile({ count: 1, time_window: 60, key: 'everyone', key_type: 'constant' });
    assert.equal((await call(constant, { routeId: 'r-const', remoteAddr: '1.1.1.1' })).exit, undefined);
    assert.equal((await call(constant, { routeId: 'r-const', remoteAddr: '2.2.2.2' })).exit?.status, 503);

    const byHeader = compile({ count: 1, time_window: 60, key: 'http_x_api_user' });
    assert.equal((await call(byHeader, { routeId: 'r-fallback', remoteAddr: '3.3.3.3' })).exit, undefined);
    assert.equal((await call(byHeader, { routeId: 'r-fallback', remoteAddr: '3.3.3.3' })).exit?.status, 503);
    assert.equal((await call(byHeader, { routeId: 'r-fallback', remoteAddr: '4.4.4.4' })).exit, undefined);
  });

  test('a group shares one counter across routes', async () => {
    const a = compile({ count: 2, time_window: 60, group: 'shared' });
    const b = compile({ count: 2, time_window: 60, group: 'shared' });
    assert.equal((await call(a, { routeId: 'ga' })).exit, undefined);
    assert.equal((await call(b, { routeId: 'gb' })).exit, undefined);
    assert.equal((await call(a, { routeId: 'ga' })).exit?.status, 503);
  });

  test('count from a variable, and header names from the metadata', async () => {
    const compiled = compile(
      { count: '$http_x_quota', time_window: 60 },
      { limit_header: 'X-Quota', remaining_header: 'X-Left', reset_header: 'X-Reset' },
    );
    const first = await call(compiled, { routeId: 'r-var', headers: { 'x-quota': '1' } });
    assert.equal(first.exit, undefined);
    assert.equal(first.ctx.responseHeader('x-quota'), '1');
    assert.equal(first.ctx.responseHeader('x-left'), '0');
    assert.equal((await call(compiled, { routeId: 'r-var', headers: { 'x-quota': '1' } })).exit?.status, 503);
    // A count that does not resolve is a failure: 500.
    const unresolved = await call(compiled, { routeId: 'r-var2' });
    assert.equal(unresolved.exit?.status, 500);
    assert.deepEqual(unresolved.exit?.body, { error_msg: 'failed to limit count' });
  });

  test('rules: each rule counts apart, with its header prefix', async () => {
    const compiled = compile({
      rules: [
        { count: 3, time_window: 60, key: '$remote_addr', header_prefix: 'ip' },
        { count: 1, time_window: 60, key: '$http_x_user', header_prefix: 'user' },
      ],
    });
    const first = await call(compiled, { routeId: 'r-rules', headers: { 'x-user': 'u1' } });
    assert.equal(first.exit, undefined);
    assert.equal(first.ctx.responseHeader('x-ip-ratelimit-remaining'), '2');
    assert.equal(first.ctx.responseHeader('x-user-ratelimit-remaining'), '0');
    const second = await call(compiled, { routeId: 'r-rules', headers: { 'x-user': 'u1' } });
    assert.equal(second.exit?.status, 503);
    assert.equal(second.exit?.headers?.['X-user-RateLimit-Remaining'], '0');
    // Without x-user the second rule does not apply.
    assert.equal((await call(compiled, { routeId: 'r-rules' })).exit, undefined);
  });

  test('a missing dictionary is a 500, or passes with allow_degradation', async () => {
    const strict = compilePluginConf(limitCount, { count: 1, time_window: 60 });
    const failed = await limitCount.access?.(strict, testContext());
    assert.equal((failed as PluginExit | undefined)?.status, 500);
    const lenient = compilePluginConf(limitCount, { count: 1, time_window: 60, allow_degradation: true });
    assert.equal(await limitCount.access?.(lenient, testContext()), undefined);
  });
});

describe('limit-count redis (real redis-server)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    closeAllRedis();
    await redis.close();
  });

  test('counts in Redis across compiled copies, with headers and rejection', async () => {
    const conf = { count: 2, time_window: 60, policy: 'redis', redis_host: redis.host, redis_port: redis.port };
    const a = compile(conf);
    const b = compile(conf);
    const first = await call(a, { routeId: 'redis-1' });
    assert.equal(first.exit, undefined);
    assert.equal(first.ctx.responseHeader('x-ratelimit-remaining'), '1');
    assert.equal(first.ctx.responseHeader('x-ratelimit-reset'), '60');
    assert.equal((await call(b, { routeId: 'redis-1' })).exit, undefined);
    const third = await call(a, { routeId: 'redis-1' });
    assert.equal(third.exit?.status, 503);
    assert.equal(third.exit?.headers?.['X-RateLimit-Remaining'], '0');
    limitCount.release?.(a);
    limitCount.release?.(b);
  });

  test('the window expires in Redis', async () => {
    const compiled = compile({
      count: 1,
      time_window: 1,
      policy: 'redis',
      redis_host: redis.host,
      redis_port: redis.port,
    });
    assert.equal((await call(compiled, { routeId: 'redis-2' })).exit, undefined);
    assert.equal((await call(compiled, { routeId: 'redis-2' })).exit?.status, 503);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.equal((await call(compiled, { routeId: 'redis-2' })).exit, undefined);
    limitCount.release?.(compiled);
  });

  test('an unreachable Redis is a 500, or passes with allow_degradation', async () => {
    const base = {
      count: 1,
      time_window: 60,
      policy: 'redis',
      redis_host: '127.0.0.1',
      redis_port: 1,
      redis_timeout: 200,
    };
    const strict = compile(base);
    const failed = await call(strict, { routeId: 'redis-down' });
    assert.equal(failed.exit?.status, 500);
    assert.deepEqual(failed.exit?.body, { error_msg: 'failed to limit count' });
    const lenient = compile({ ...base, allow_degradation: true });
    assert.equal((await call(lenient, { routeId: 'redis-down' })).exit, undefined);
    limitCount.release?.(strict);
    limitCount.release?.(lenient);
  });
});

describe('limit-count redis-cluster (3 real redis-server nodes)', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    closeAllRedis();
    await cluster.close();
  });

  test('counts in the cluster for keys on different nodes', async () => {
    const compiled = compile({
      count: 2,
      time_window: 60,
      policy: 'redis-cluster',
      redis_cluster_nodes: cluster.nodes,
      redis_cluster_name: 'test-cluster',
    });
    // Many client addresses spread the counters over the cluster's slots.
    for (let i = 1; i <= 20; i++) {
      const remoteAddr = `10.1.0.${i}`;
      assert.equal((await call(compiled, { routeId: 'cluster', remoteAddr })).exit, undefined);
      const second = await call(compiled, { routeId: 'cluster', remoteAddr });
      assert.equal(second.exit, undefined);
      assert.equal(second.ctx.responseHeader('x-ratelimit-remaining'), '0');
      assert.equal((await call(compiled, { routeId: 'cluster', remoteAddr })).exit?.status, 503);
    }
    limitCount.release?.(compiled);
  });
});
