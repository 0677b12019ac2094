// Compiled plugin configurations are released (the plugin's release()) once no
// route table holds them and requests that started on an older table have had
// the grace period to finish: a replaced or deleted route, a replaced global
// rule or consumer, a plugin reload and shutdown; never one the current table
// still uses. Over real sockets, with counting test plugins, and end to end
// with limit-count's Redis client against a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import limitCount from '../../../src/plugins/builtin/limit-count';
import { closeAllRedis } from '../../../src/plugins/lib/redis';
import { PluginRegistry } from '../../../src/plugins/registry';
import type { PluginModule } from '../../../src/plugins/types';
import type { Consumer, GlobalRule, Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { localUpstream } from '../../helpers/dataplane';
import { RawClient, rawRequest } from '../../helpers/http-client';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';
import { ANY_OBJECT, eventually } from '../dataplane/support';

const GRACE_MS = 150;
const backend = loadBackend('js');

interface CountedConf {
  readonly tag: string;
  released: boolean;
}

/** A plugin whose compile() and release() record the `tag` of each configuration. */
class CountingPlugin {
  readonly compiled: string[] = [];
  readonly released: string[] = [];
  /** Tags and whether their configuration was already released, from the log phase. */
  readonly logged: Array<{ tag: string; released: boolean }> = [];
  readonly module: PluginModule<CountedConf>;

  constructor(name: string, options: { throwOnRelease?: boolean } = {}) {
    this.module = {
      name,
      version: '0.1',
      priority: 100,
      schema: ANY_OBJECT,
      compile: (conf) => {
        const tag = String((conf as { tag?: unknown }).tag);
        this.compiled.push(tag);
        return { tag, released: false };
      },
      release: (conf) => {
        conf.released = true;
        this.released.push(conf.tag);
        if (options.throwOnRelease === true) throw new Error(`release of ${conf.tag} failed`);
      },
      log: (conf) => {
        this.logged.push({ tag: conf.tag, released: conf.released });
      },
    };
  }
}

/** Requests that reached the auth plugin's rewrite. */
let authStarted = 0;

/**
 * An auth plugin: `apikey` names the consumer whose `test-release-auth.key`
 * matches; with `x-slow-auth` it waits 300 ms before attaching the consumer.
 */
const authPlugin: PluginModule<unknown> = {
  name: 'test-release-auth',
  version: '0.1',
  priority: 2500,
  type: 'auth',
  schema: ANY_OBJECT,
  consumerSchema: ANY_OBJECT,
  async rewrite(_conf, ctx) {
    authStarted++;
    if (ctx.header('x-slow-auth') !== undefined) await sleep(300);
    const key = ctx.header('apikey');
    const consumer = key === undefined ? undefined : ctx.findConsumer('test-release-auth', 'key', key);
    if (consumer === undefined) return ctx.exit(401, { message: 'Invalid API key in request' });
    ctx.attachConsumer(consumer);
    return undefined;
  },
};

/** A registry of `modules` (custom plugins with no file behind them). */
function registryOf(modules: ReadonlyArray<PluginModule<CountedConf> | PluginModule<unknown>>): PluginRegistry {
  return new PluginRegistry(
    1,
    modules.map((plugin) => ({ plugin: plugin as PluginModule, origin: 'custom' as const, file: '', digest: '' })),
  );
}

let versions = 0;

function snapshotOf(config: { routes: Route[]; consumers?: Consumer[]; globalRules?: GlobalRule[] }): ConfigSnapshot {
  return {
    version: ++versions,
    routes: config.routes,
    services: [],
    upstreams: [],
    consumers: config.consumers ?? [],
    consumer_groups: [],
    global_rules: config.globalRules ?? [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

interface Gateway {
  readonly dataPlane: DataPlane;
  readonly port: number;
  /** Replace the registry compiles use (a plugin reload); the next applyConfig sees it. */
  registry: PluginRegistry;
}

async function startGateway(registry: PluginRegistry, snapshot: ConfigSnapshot, graceMs = GRACE_MS): Promise<Gateway> {
  const gateway = { registry } as Gateway;
  const dataPlane = new DataPlane(backend, {
    listen: [{ host: '127.0.0.1', port: 0 }],
    plugins: {
      get registry() {
        return gateway.registry;
      },
    },
    releaseGraceMs: graceMs,
  });
  dataPlane.applyConfig(snapshot);
  const [bound] = await dataPlane.listen();
  return Object.assign(gateway, { dataPlane, port: bound.port });
}

async function get(port: number, path: string, headers = ''): Promise<number> {
  const response = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: test\r\n${headers}Connection: close\r\n\r\n`, {
    timeoutMs: 5000,
  });
  return response.status;
}

describe('release of compiled plugin configurations', () => {
  let upstream: TestUpstream;
  /** Requests to /slow are answered after this many ms. */
  const slowMs = 300;

  before(async () => {
    upstream = await startUpstream({
      handler: (req, res) => {
        const answer = (): void => {
          res.writeHead(200, { 'content-length': 2 });
          res.end('ok');
        };
        if (req.url === '/slow') setTimeout(answer, slowMs);
        else answer();
      },
    });
  });
  after(async () => {
    await upstream.close();
  });

  const route = (id: string, plugins: Route['plugins']): Route => ({
    id,
    uri: `/${id}`,
    plugins,
    upstream: localUpstream([upstream.port]),
  });

  it('releases a replaced or deleted route after the grace, never an unchanged one, and everything on close', async () => {
    const counter = new CountingPlugin('test-release-counter');
    const routeA1 = route('a', { 'test-release-counter': { tag: 'a1' } });
    const routeB = route('b', { 'test-release-counter': { tag: 'b1' } });
    const gateway = await startGateway(registryOf([counter.module]), snapshotOf({ routes: [routeA1, routeB] }));
    try {
      assert.equal(await get(gateway.port, '/a'), 200);
      assert.equal(await get(gateway.port, '/b'), 200);
      assert.deepEqual(counter.compiled.sort(), ['a1', 'b1']);

      const routeA2 = route('a', { 'test-release-counter': { tag: 'a2' } });
      gateway.dataPlane.applyConfig(snapshotOf({ routes: [routeA2, routeB] }));
      assert.deepEqual(counter.released, [], 'nothing is released before the grace period');
      await eventually(() => counter.released.length > 0);
      assert.deepEqual(counter.released, ['a1']);
      assert.equal(await get(gateway.port, '/a'), 200);
      assert.equal(await get(gateway.port, '/b'), 200);

      gateway.dataPlane.applyConfig(snapshotOf({ routes: [routeB] }));
      await eventually(() => counter.released.length > 1);
      assert.deepEqual(counter.released, ['a1', 'a2']);
      await sleep(GRACE_MS * 2);
      assert.deepEqual(counter.released, ['a1', 'a2'], 'the unchanged route b keeps its configuration');
      assert.deepEqual(counter.compiled.sort(), ['a1', 'a2', 'b1'], 'b was compiled once');
      assert.equal(await get(gateway.port, '/b'), 200);
    } finally {
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(counter.released, ['a1', 'a2', 'b1'], 'close releases what is left, each once');
    await sleep(GRACE_MS * 2);
    assert.deepEqual(counter.released, ['a1', 'a2', 'b1']);
  });

  it('lets a request in flight across the swap finish with its configuration, then releases it', async () => {
    const counter = new CountingPlugin('test-release-counter');
    const graceMs = 1500;
    const gateway = await startGateway(
      registryOf([counter.module]),
      snapshotOf({ routes: [route('slow', { 'test-release-counter': { tag: 's1' } })] }),
      graceMs,
    );
    const client = await RawClient.connect(gateway.port);
    try {
      const seenBefore = upstream.requests.length;
      client.write('GET /slow HTTP/1.1\r\nHost: test\r\n\r\n');
      await eventually(() => upstream.requests.length > seenBefore);
      const swappedAt = Date.now();
      gateway.dataPlane.applyConfig(snapshotOf({ routes: [route('slow', { 'test-release-counter': { tag: 's2' } })] }));
      const response = await client.read({ timeoutMs: 5000 });
      assert.equal(response.status, 200);
      await eventually(() => counter.logged.length > 0);
      assert.deepEqual(counter.logged, [{ tag: 's1', released: false }], 'the log phase ran on the old configuration');
      await eventually(() => counter.released.length > 0, graceMs + 2000);
      assert.ok(Date.now() - swappedAt >= graceMs - 50, 'released only after the grace period');
      assert.deepEqual(counter.released, ['s1']);
    } finally {
      client.close();
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(counter.released, ['s1', 's2']);
  });

  it('releases what the old modules compiled after a plugin reload, not what an unchanged module compiled', async () => {
    const reloaded = new CountingPlugin('test-release-reloaded');
    const kept = new CountingPlugin('test-release-kept');
    const routes = [
      route('r', { 'test-release-reloaded': { tag: 'old-module' }, 'test-release-kept': { tag: 'kept' } }),
    ];
    const gateway = await startGateway(registryOf([reloaded.module, kept.module]), snapshotOf({ routes }));
    try {
      assert.equal(await get(gateway.port, '/r'), 200);
      // A reload required the file again: a new module object under the same name.
      const newModule: PluginModule<CountedConf> = { ...reloaded.module };
      gateway.registry = registryOf([newModule, kept.module]);
      gateway.dataPlane.applyConfig(snapshotOf({ routes }));
      await eventually(() => reloaded.released.length > 0);
      assert.deepEqual(reloaded.released, ['old-module']);
      assert.deepEqual(reloaded.compiled, ['old-module', 'old-module'], 'the new module compiled the same object');
      assert.equal(await get(gateway.port, '/r'), 200);
      await sleep(GRACE_MS * 2);
      assert.deepEqual(kept.released, [], 'the unchanged module keeps its compiled configuration');
      assert.deepEqual(kept.compiled, ['kept']);
    } finally {
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(reloaded.released, ['old-module', 'old-module']);
    assert.deepEqual(kept.released, ['kept']);
  });

  it('releases a replaced global rule and the merged configuration of a replaced consumer', async () => {
    const counter = new CountingPlugin('test-release-counter');
    const registry = registryOf([counter.module, authPlugin]);
    const routes = [route('auth', { 'test-release-auth': {} })];
    const jack1: Consumer = {
      username: 'jack',
      plugins: { 'test-release-auth': { key: 'jack-key' }, 'test-release-counter': { tag: 'jack1' } },
    };
    const global1: GlobalRule = { id: '1', plugins: { 'test-release-counter': { tag: 'g1' } } };
    const gateway = await startGateway(registry, snapshotOf({ routes, consumers: [jack1], globalRules: [global1] }));
    try {
      assert.equal(await get(gateway.port, '/auth', 'apikey: jack-key\r\n'), 200);
      assert.equal(await get(gateway.port, '/nowhere'), 404);
      assert.deepEqual(counter.compiled.sort(), ['g1', 'jack1']);

      const jack2: Consumer = { ...jack1, plugins: { ...jack1.plugins, 'test-release-counter': { tag: 'jack2' } } };
      gateway.dataPlane.applyConfig(snapshotOf({ routes, consumers: [jack2], globalRules: [global1] }));
      assert.equal(await get(gateway.port, '/auth', 'apikey: jack-key\r\n'), 200);
      await eventually(() => counter.released.length > 0);
      assert.deepEqual(counter.released, ['jack1']);
      await sleep(GRACE_MS * 2);
      assert.deepEqual(counter.released, ['jack1'], "jack2's merged configuration stays while jack is a consumer");

      const global2: GlobalRule = { id: '1', plugins: { 'test-release-counter': { tag: 'g2' } } };
      gateway.dataPlane.applyConfig(snapshotOf({ routes, consumers: [jack2], globalRules: [global2] }));
      assert.equal(await get(gateway.port, '/nowhere'), 404);
      await eventually(() => counter.released.includes('g1'));
      await sleep(GRACE_MS * 2);
      // The global rule changed, so the route's chain (and its memo of merged chains) was compiled again;
      // jack2 is merged afresh on the next request.
      assert.deepEqual(counter.released.sort(), ['g1', 'jack1', 'jack2']);
      assert.equal(await get(gateway.port, '/auth', 'apikey: jack-key\r\n'), 200);
    } finally {
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(counter.released.sort(), ['g1', 'g2', 'jack1', 'jack2', 'jack2']);
  });

  it('releases a consumer-merged configuration compiled on a chain already swapped out', async () => {
    const counter = new CountingPlugin('test-release-counter');
    const consumers: Consumer[] = [
      {
        username: 'jack',
        plugins: { 'test-release-auth': { key: 'jack-key' }, 'test-release-counter': { tag: 'late' } },
      },
    ];
    const gateway = await startGateway(
      registryOf([counter.module, authPlugin]),
      snapshotOf({ routes: [route('auth', { 'test-release-auth': {} })], consumers }),
    );
    const client = await RawClient.connect(gateway.port);
    try {
      const started = authStarted;
      client.write('GET /auth HTTP/1.1\r\nHost: test\r\napikey: jack-key\r\nx-slow-auth: 1\r\n\r\n');
      await eventually(() => authStarted > started);
      // A new route object: a new chain, which no request merges jack into.
      gateway.dataPlane.applyConfig(snapshotOf({ routes: [route('auth', { 'test-release-auth': {} })], consumers }));
      assert.equal((await client.read({ timeoutMs: 5000 })).status, 200);
      assert.deepEqual(counter.compiled, ['late'], 'merged on the old chain after the swap');
      await eventually(() => counter.logged.length > 0);
      assert.deepEqual(counter.logged, [{ tag: 'late', released: false }]);
      // No further config change: the data plane timed a sweep when the merge compiled.
      await eventually(() => counter.released.length > 0, GRACE_MS * 2 + 2000);
      assert.deepEqual(counter.released, ['late']);
    } finally {
      client.close();
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(counter.released, ['late']);
  });

  it('releases what a config that failed to compile had compiled, and keeps the table in use', async () => {
    const counter = new CountingPlugin('test-release-counter');
    const kept = route('k', { 'test-release-counter': { tag: 'k1' } });
    const gateway = await startGateway(registryOf([counter.module]), snapshotOf({ routes: [kept] }));
    try {
      const compiledFirst = route('n', { 'test-release-counter': { tag: 'n1' } });
      const invalid: Route = { ...route('bad', {}), vars: [['arg_x', 'no-such-operator', '1']] };
      assert.throws(() => gateway.dataPlane.applyConfig(snapshotOf({ routes: [kept, compiledFirst, invalid] })));
      assert.deepEqual(counter.compiled, ['k1', 'n1']);
      await eventually(() => counter.released.length > 0);
      await sleep(GRACE_MS * 2);
      assert.deepEqual(counter.released, ['n1']);
      assert.equal(await get(gateway.port, '/k'), 200);
      assert.equal(await get(gateway.port, '/n'), 404);
    } finally {
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(counter.released, ['n1', 'k1']);
  });

  it('logs a release() that throws and goes on', async () => {
    const thrower = new CountingPlugin('test-release-thrower', { throwOnRelease: true });
    const gateway = await startGateway(
      registryOf([thrower.module]),
      snapshotOf({ routes: [route('t', { 'test-release-thrower': { tag: 't1' } })] }),
    );
    try {
      gateway.dataPlane.applyConfig(snapshotOf({ routes: [route('t', { 'test-release-thrower': { tag: 't2' } })] }));
      await eventually(() => thrower.released.length > 0);
      await sleep(GRACE_MS * 2);
      assert.deepEqual(thrower.released, ['t1'], 'called once, not retried');
      assert.equal(await get(gateway.port, '/t'), 200);
    } finally {
      await gateway.dataPlane.close(1000);
    }
    assert.deepEqual(thrower.released, ['t1', 't2']);
  });
});

describe('limit-count policy redis: the Redis client closes when its last route is gone', () => {
  let redis: RedisServer;
  let probe: Redis;
  let upstream: TestUpstream;

  before(async () => {
    redis = await startRedis();
    probe = new Redis({ host: redis.host, port: redis.port, connectionName: 'release-probe', lazyConnect: true });
    await probe.connect();
    upstream = await startUpstream();
  });
  after(async () => {
    probe.disconnect();
    closeAllRedis();
    await redis.close();
    await upstream.close();
  });

  /** Clients connected to the Redis server other than the probe. */
  async function gatewayClients(): Promise<number> {
    const list = String(await probe.call('CLIENT', 'LIST'));
    return list.split('\n').filter((line) => line.includes('addr=') && !line.includes('name=release-probe')).length;
  }

  async function eventuallyClients(expected: number): Promise<void> {
    const until = Date.now() + 3000;
    let count = await gatewayClients();
    while (count !== expected && Date.now() < until) {
      await sleep(20);
      count = await gatewayClients();
    }
    assert.equal(count, expected);
  }

  it('disconnects after the route is deleted and the grace has passed', async () => {
    const conf = { count: 100, time_window: 60, policy: 'redis', redis_host: redis.host, redis_port: redis.port };
    const limited: Route = {
      id: 'limited',
      uri: '/limited',
      plugins: { 'limit-count': conf },
      upstream: localUpstream([upstream.port]),
    };
    const plain: Route = { id: 'plain', uri: '/plain', upstream: localUpstream([upstream.port]) };
    const graceMs = 500;
    const gateway = await startGateway(
      registryOf([limitCount as PluginModule<unknown>]),
      snapshotOf({ routes: [limited, plain] }),
      graceMs,
    );
    try {
      assert.equal(await get(gateway.port, '/limited'), 200);
      await eventuallyClients(1);
      const deletedAt = Date.now();
      gateway.dataPlane.applyConfig(snapshotOf({ routes: [plain] }));
      assert.equal(await gatewayClients(), 1, 'still connected during the grace period');
      await eventuallyClients(0);
      assert.ok(Date.now() - deletedAt >= graceMs - 50);
      assert.equal(await get(gateway.port, '/plain'), 200);
    } finally {
      await gateway.dataPlane.close(1000);
    }
  });
});
