import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRouteTable } from '../../../src/dataplane/route-table';
import { loadBackend } from '../../../src/native';
import { compileChain, createChainContext, type ChainContext } from '../../../src/plugins/chain';
import type { ChainEntry, PluginChain, PluginContext, PluginEnv, PluginExit } from '../../../src/plugins/types';
import type { Consumer, Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { emptySnapshot, fakePlugin, registryOf } from './support';

const alpha = fakePlugin('alpha', 3000);
const beta = fakePlugin('beta', 2000);
const gamma = fakePlugin('gamma', 1000);
const auth = fakePlugin('auth', 2500, { type: 'auth', rewrite: () => undefined, access: undefined });
const shaper = fakePlugin('shaper', 900, { access: undefined, header_filter: () => undefined });
const logger = fakePlugin('logger', 400, { access: undefined, log: () => undefined });
const registry = registryOf(1, alpha, beta, gamma, auth, shaper, logger);

function context(snapshot: ConfigSnapshot, reg = registry, previous?: ChainContext): ChainContext {
  return createChainContext(snapshot, reg, undefined, previous);
}

function names(entries: readonly ChainEntry[]): string[] {
  return entries.map((entry) => entry.plugin.name);
}

function confOf(chain: PluginChain, name: string): unknown {
  return chain.access.find((entry) => entry.plugin.name === name)?.conf;
}

function route(plugins: Record<string, unknown>, extra: Partial<Route> = {}): Route {
  return { id: 'r1', uri: '/x', plugins, ...extra } as Route;
}

/** A context whose var() answers from a map; the rest is never used by chain tests. */
function varsContext(vars: Record<string, string>): PluginContext {
  return { var: (name: string) => vars[name] } as unknown as PluginContext;
}

function runRewrite(chain: PluginChain): PluginExit | undefined {
  const entry = chain.rewrite[0];
  return entry.plugin.rewrite?.(entry.conf, varsContext({})) as PluginExit | undefined;
}

describe('compileChain', () => {
  it('is null when no plugin applies', () => {
    assert.equal(compileChain(route({}), context(emptySnapshot())), null);
    assert.equal(compileChain(route({}, { plugins: undefined }), context(emptySnapshot())), null);
  });

  it('merges service < plugin_config < route per plugin name and fills schema defaults', () => {
    const snapshot = emptySnapshot();
    snapshot.services = [{ id: 's1', plugins: { alpha: { n: 1 }, beta: { n: 1 } } }];
    snapshot.plugin_configs = [{ id: 'pc1', plugins: { beta: { n: 2 }, gamma: { n: 2 } } }];
    const chain = compileChain(
      route({ gamma: { n: 3 }, shaper: {} }, { service_id: 's1', plugin_config_id: 'pc1' }),
      context(snapshot),
    )!;
    assert.deepEqual(names(chain.access), ['alpha', 'beta', 'gamma']);
    assert.deepEqual(confOf(chain, 'alpha'), { n: 1 });
    assert.deepEqual(confOf(chain, 'beta'), { n: 2 });
    assert.deepEqual(confOf(chain, 'gamma'), { n: 3 });
    assert.deepEqual(names(chain.header_filter), ['shaper']);
    assert.equal(chain.header_filter[0].conf && (chain.header_filter[0].conf as { n: number }).n, 1);
  });

  it('runs global rules first in every phase; a plugin in two global rules runs in neither', () => {
    const snapshot = emptySnapshot();
    snapshot.global_rules = [
      { id: 'g1', plugins: { gamma: {}, beta: {} } },
      { id: 'g2', plugins: { beta: {}, logger: {} } },
    ];
    const chain = compileChain(route({ alpha: {}, logger: {} }), context(snapshot))!;
    assert.deepEqual(names(chain.access), ['gamma', 'alpha']);
    assert.deepEqual(names(chain.log), ['logger', 'logger']);
    // With only global rules a route still gets a chain.
    assert.deepEqual(names(compileChain(route({}), context(snapshot))!.access), ['gamma']);
  });

  it('orders by priority, with _meta.priority overriding the module priority', () => {
    const chain = compileChain(
      route({ gamma: { _meta: { priority: 5000 } }, alpha: {}, beta: { _meta: { priority: -1 } } }),
      context(emptySnapshot()),
    )!;
    assert.deepEqual(names(chain.access), ['gamma', 'alpha', 'beta']);
  });

  it('_meta: disable leaves the entry out, error_response and filter are carried, _meta is not in conf', () => {
    const chain = compileChain(
      route({
        alpha: { _meta: { disable: true } },
        beta: { _meta: { error_response: { message: 'nope' } } },
        gamma: { _meta: { filter: [['arg_version', '==', 'v2']] } },
      }),
      context(emptySnapshot()),
    )!;
    assert.deepEqual(names(chain.access), ['beta', 'gamma']);
    assert.deepEqual(chain.access[0].errorResponse, { message: 'nope' });
    assert.equal(chain.access[0].filter, null);
    assert.deepEqual(chain.access[0].conf, { n: 1 });
    const filter = chain.access[1].filter!;
    assert.equal(filter(varsContext({ arg_version: 'v2' })), true);
    assert.equal(filter(varsContext({ arg_version: 'v1' })), false);
    assert.equal(filter(varsContext({})), false);
  });

  it('a plugin that is not loaded, or whose conf fails its schema, answers 503 before anything else', () => {
    const missing = compileChain(route({ alpha: {}, nope: {} }), context(emptySnapshot()))!;
    assert.deepEqual(names(missing.rewrite), ['nope']);
    assert.deepEqual(runRewrite(missing), { status: 503, body: { error_msg: 'plugin nope is not loaded' } });
    const bad = compileChain(route({ alpha: { n: 'many' } }), context(emptySnapshot()))!;
    assert.deepEqual(runRewrite(bad), { status: 503, body: { error_msg: 'plugin alpha is misconfigured' } });
    const badFilter = compileChain(route({ alpha: { _meta: { filter: 'x' } } }), context(emptySnapshot()))!;
    assert.deepEqual(runRewrite(badFilter), { status: 503, body: { error_msg: 'plugin alpha is misconfigured' } });
  });

  it('passThroughResponse is false only with header_filter or body_filter entries', () => {
    assert.equal(compileChain(route({ alpha: {}, logger: {} }), context(emptySnapshot()))!.passThroughResponse, true);
    assert.equal(compileChain(route({ alpha: {}, shaper: {} }), context(emptySnapshot()))!.passThroughResponse, false);
  });

  it('phases(conf) narrows the phases per configuration, asked once per configuration object', () => {
    let asked = 0;
    const tapping = fakePlugin('tapping', 800, {
      schema: { type: 'object', properties: { body: { type: 'boolean', default: false } } },
      body_filter: () => undefined,
      log: () => undefined,
      phases: (conf) => {
        asked++;
        return (conf as { body: boolean }).body ? ['body_filter', 'log'] : ['log'];
      },
    });
    const reg = registryOf(2, alpha, tapping);
    const plain = { tapping: {} };
    const plainChain = compileChain(route(plain), context(emptySnapshot(), reg))!;
    assert.deepEqual(names(plainChain.access), [], 'access is defined (fakePlugin) but left out');
    assert.deepEqual(names(plainChain.body_filter), []);
    assert.deepEqual(names(plainChain.log), ['tapping']);
    assert.equal(plainChain.passThroughResponse, true);
    const tapped = compileChain(route({ alpha: {}, tapping: { body: true } }), context(emptySnapshot(), reg))!;
    assert.deepEqual(names(tapped.access), ['alpha']);
    assert.deepEqual(names(tapped.body_filter), ['tapping']);
    assert.equal(tapped.passThroughResponse, false);
    const shared = context(emptySnapshot(), reg);
    compileChain(route(plain), shared);
    const before = asked;
    compileChain(route(plain, { id: 'r2' }), shared);
    assert.equal(asked, before, 'a cached configuration is not asked again');
  });

  it('a phases() that throws makes the entry answer 503, as a failing compile() does', () => {
    let released = 0;
    const throwing = fakePlugin('throwing', 800, {
      compile: () => ({ open: true }),
      release: () => {
        released++;
      },
      phases: () => {
        throw new Error('no phases');
      },
    });
    const chain = compileChain(route({ throwing: {} }), context(emptySnapshot(), registryOf(3, throwing)))!;
    assert.deepEqual(runRewrite(chain), { status: 503, body: { error_msg: 'plugin throwing is misconfigured' } });
    assert.equal(released, 1, 'what compile() opened is released');
  });

  it('compile() runs once per configuration object, with defaults and the plugin metadata', () => {
    const seen: Array<{ conf: unknown; metadata: unknown }> = [];
    const compiling = fakePlugin('compiling', 10, {
      metadataSchema: { type: 'object', properties: { level: { type: 'string', default: 'low' } } },
      compile(conf: unknown, env: PluginEnv) {
        seen.push({ conf, metadata: env.metadata });
        return { compiled: conf };
      },
    });
    const reg = registryOf(1, compiling);
    const snapshot = emptySnapshot();
    const shared = { n: 7 };
    snapshot.services = [{ id: 's', plugins: { compiling: shared } }];
    snapshot.plugin_metadata = [{ id: 'compiling' }];
    const ctx = context(snapshot, reg);
    const a = compileChain(route({}, { id: 'a', service_id: 's' }), ctx)!;
    const b = compileChain(route({}, { id: 'b', service_id: 's' }), ctx)!;
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0], { conf: { n: 7 }, metadata: { level: 'low' } });
    assert.equal(a.access[0].conf, b.access[0].conf);
    assert.deepEqual(a.access[0].conf, { compiled: { n: 7 } });
  });

  describe('mergeConsumer', () => {
    const snapshot = emptySnapshot();
    snapshot.consumer_groups = [{ id: 'gold', plugins: { beta: { n: 20 }, gamma: { n: 20 } } }];
    const jack: Consumer = {
      username: 'jack',
      group_id: 'gold',
      plugins: { auth: { key: 'k' }, gamma: { n: 30 }, logger: {} },
    } as Consumer;

    it('merges consumer > consumer group > route, skipping the consumer auth plugins', () => {
      const chain = compileChain(route({ auth: {}, alpha: { n: 10 }, beta: { n: 10 } }), context(snapshot))!;
      assert.deepEqual(names(chain.rewrite), ['auth']);
      const merged = chain.mergeConsumer({ username: 'jack', consumer: jack });
      assert.deepEqual(names(merged.access), ['alpha', 'beta', 'gamma']);
      assert.deepEqual(confOf(merged, 'alpha'), { n: 10 });
      assert.deepEqual(confOf(merged, 'beta'), { n: 20 });
      assert.deepEqual(confOf(merged, 'gamma'), { n: 30 });
      assert.deepEqual(names(merged.log), ['logger']);
      // Only the consumer's and group's rewrites are still to run; the route's auth already ran.
      assert.deepEqual(names(merged.rewrite), []);
      assert.equal(chain.mergeConsumer({ username: 'jack', consumer: jack }), merged, 'memoized per consumer');
    });

    it('a consumer without plugins of its own gets the route chain back', () => {
      const chain = compileChain(route({ auth: {}, alpha: {} }), context(emptySnapshot()))!;
      const plain = { username: 'ann', plugins: { auth: { key: 'a' } } } as Consumer;
      assert.equal(chain.mergeConsumer({ username: 'ann', consumer: plain }), chain);
    });

    it('consumer rewrites are listed in the merged chain rewrite', () => {
      const rewriter = fakePlugin('rewriter', 100, { rewrite: () => undefined });
      const reg = registryOf(2, auth, rewriter);
      const chain = compileChain(route({ auth: {} }), context(emptySnapshot(), reg))!;
      const bob = { username: 'bob', plugins: { auth: { key: 'b' }, rewriter: {} } } as Consumer;
      assert.deepEqual(names(chain.mergeConsumer({ username: 'bob', consumer: bob }).rewrite), ['rewriter']);
    });
  });
});

describe('route table chains', () => {
  const backend = loadBackend('js');

  it('attaches chains, reuses them while nothing changed, recompiles on a reload or a global rule change', () => {
    let current = registry;
    const runtime = {
      get registry() {
        return current;
      },
    };
    const r1 = route({ alpha: {} });
    const r2 = { id: 'r2', uri: '/y', upstream: { nodes: { '127.0.0.1:1': 1 }, type: 'roundrobin' } } as Route;
    const snapshot = { ...emptySnapshot(1), routes: [r1, r2] };
    const first = compileRouteTable(backend, snapshot, undefined, undefined, runtime);
    assert.deepEqual(names(first.routes[0].chain!.access), ['alpha']);
    assert.equal(first.routes[1].chain, null);

    const second = compileRouteTable(backend, { ...snapshot, version: 2 }, first, undefined, runtime);
    assert.equal(second.routes[0], first.routes[0], 'unchanged route reused whole');

    // A reload: a new registry where alpha changed.
    const alpha2 = fakePlugin('alpha', 3000, { access: () => ({ status: 418 }) });
    current = registryOf(2, alpha2, beta);
    const third = compileRouteTable(backend, { ...snapshot, version: 3 }, second, undefined, runtime);
    assert.notEqual(third.routes[0].chain, first.routes[0].chain);
    assert.equal(third.routes[0].chain!.access[0].plugin.access, third.routes[0].chain!.access[0].plugin.access);
    assert.notEqual(third.routes[0].chain!.access[0].plugin, first.routes[0].chain!.access[0].plugin);
    // The old chain still holds the old module: requests in flight finish on it.
    assert.equal(first.routes[0].chain!.access[0].plugin.name, 'alpha');
    assert.notEqual(first.routes[0].chain!.access[0].plugin.access, alpha2.access);

    // A removed plugin: the route fails closed instead of running without it.
    current = registryOf(3, beta);
    const fourth = compileRouteTable(backend, { ...snapshot, version: 4 }, third, undefined, runtime);
    assert.deepEqual(runRewrite(fourth.routes[0].chain!), {
      status: 503,
      body: { error_msg: 'plugin alpha is not loaded' },
    });

    // A global rule gives every route a chain.
    const withGlobal = { ...snapshot, version: 5, global_rules: [{ id: 'g', plugins: { beta: {} } }] };
    const fifth = compileRouteTable(backend, withGlobal, fourth, undefined, runtime);
    assert.deepEqual(names(fifth.routes[1].chain!.access), ['beta']);
    for (const table of [first, second, third, fourth, fifth]) if (table.router >= 0) backend.routerFree(table.router);
  });

  it('without a plugin runtime routes have no chain', () => {
    const table = compileRouteTable(backend, { ...emptySnapshot(), routes: [route({ alpha: {} })] }, undefined);
    assert.equal(table.routes[0].chain, null);
    backend.routerFree(table.router);
  });
});
