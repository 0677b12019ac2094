import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILTIN_PLUGIN_DIR, PluginLoader, SERVERLESS_PLUGINS } from '../../../src/plugins/loader';
import { checkPluginModule, PluginLoadError, PluginRegistry } from '../../../src/plugins/registry';
import type { PluginContext } from '../../../src/plugins/types';
import { pluginDir, type PluginDir } from './support';

/** Call a loaded plugin's access phase with a context that only implements exit(). */
function accessResult(loader: PluginLoader, name: string): unknown {
  const plugin = loader.registry.get(name);
  assert.ok(plugin?.access, `${name} has an access phase`);
  const ctx = { exit: (status: number, body: unknown) => ({ status, body }) } as unknown as PluginContext;
  return plugin.access({ word: 'x' }, ctx);
}

describe('plugin loader: custom plugin directory and hot reload', () => {
  let builtins: PluginDir;
  let custom: PluginDir;

  before(() => {
    builtins = pluginDir('palisade-builtins-');
    builtins.write('alpha', { priority: 2000 });
    builtins.write('serverless-pre-function', { priority: 10000 });
    custom = pluginDir();
  });
  after(() => {
    builtins.close();
    custom.close();
  });

  it('loads built-ins and custom plugins, reloads added, changed and removed files', () => {
    custom.write('hello', { body: 'access(conf, ctx) { return ctx.exit(200, { v: 1 }); },' });
    const loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    const first = loader.load();
    assert.equal(first.version, 1);
    assert.deepEqual(loader.registry.names(), ['alpha', 'hello']);
    assert.equal(loader.registry.loaded('hello')?.origin, 'custom');
    assert.equal(loader.registry.get('hello')?.source, path.join(custom.dir, 'hello.js'));
    assert.deepEqual(accessResult(loader, 'hello'), { status: 200, body: { v: 1 } });
    const oldModule = loader.registry.get('hello');

    // Nothing changed: same registry, same version.
    const registry = loader.registry;
    const unchanged = loader.reload();
    assert.equal(unchanged.version, 1);
    assert.equal(loader.registry, registry);

    // Changed contents are required again; the old module object keeps its code.
    custom.write('hello', { body: 'access(conf, ctx) { return ctx.exit(200, { v: 2 }); },' });
    custom.write('world', { priority: 3000 });
    const second = loader.reload();
    assert.equal(second.version, 2);
    assert.deepEqual(second.changed, ['hello']);
    assert.deepEqual(second.added, ['world']);
    assert.deepEqual(loader.registry.names(), ['world', 'alpha', 'hello']);
    assert.deepEqual(accessResult(loader, 'hello'), { status: 200, body: { v: 2 } });
    assert.notEqual(loader.registry.get('hello'), oldModule);
    const ctx = { exit: (status: number, body: unknown) => ({ status, body }) } as unknown as PluginContext;
    assert.deepEqual(oldModule?.access?.({}, ctx), { status: 200, body: { v: 1 } });

    custom.remove('world');
    const third = loader.reload();
    assert.equal(third.version, 3);
    assert.deepEqual(third.removed, ['world']);
    assert.equal(loader.registry.has('world'), false);
    custom.remove('hello');
    loader.reload();
  });

  it('a changed file that fails to load keeps its previous version and is reported', () => {
    custom.write('steady', { body: 'access(conf, ctx) { return ctx.exit(200, "old"); },' });
    const loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    loader.load();
    custom.writeRaw('steady', 'module.exports = { name: "steady", version: "1", priority: 1, schema: {}, ');
    const report = loader.reload();
    assert.equal(report.failed.length, 1);
    assert.match(report.failed[0].error, /failed to load plugin/);
    assert.deepEqual(accessResult(loader, 'steady'), { status: 200, body: 'old' });
    // A new file that fails is simply not loaded.
    custom.writeRaw('broken', 'module.exports = { name: "broken", version: "1", schema: {} };');
    const again = loader.reload();
    assert.ok(again.failed.some((f) => f.error === 'invalid plugin [broken], missing field: priority'));
    assert.equal(loader.registry.has('broken'), false);
    custom.remove('steady');
    custom.remove('broken');
  });

  it('helpers under plugin_dir are read again when a plugin changes', () => {
    mkdirSync(path.join(custom.dir, 'lib'), { recursive: true });
    writeFileSync(path.join(custom.dir, 'lib', 'word.js'), 'module.exports = "one";');
    const body = 'access(conf, ctx) { return ctx.exit(200, require("./lib/word.js")); },';
    custom.write('helped', { body });
    const loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    loader.load();
    assert.deepEqual(accessResult(loader, 'helped'), { status: 200, body: 'one' });
    writeFileSync(path.join(custom.dir, 'lib', 'word.js'), 'module.exports = "two";');
    custom.write('helped', { body: `${body} // touched` });
    loader.reload();
    assert.deepEqual(accessResult(loader, 'helped'), { status: 200, body: 'two' });
    custom.remove('helped');
  });

  it('the enabled list and the serverless switch decide what is loaded; hidden files are ignored', () => {
    custom.write('gamma', {});
    custom.write('.hidden', { name: 'hidden' });
    const all = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    all.load();
    assert.deepEqual(all.registry.names(), ['alpha', 'gamma']);
    const withServerless = new PluginLoader(
      { enabled: undefined, pluginDir: custom.dir, serverless: true },
      builtins.dir,
    );
    withServerless.load();
    assert.deepEqual(withServerless.registry.names(), ['serverless-pre-function', 'alpha', 'gamma']);
    const listed = new PluginLoader(
      { enabled: ['gamma', 'nope'], pluginDir: custom.dir, serverless: true },
      builtins.dir,
    );
    listed.load();
    assert.deepEqual(listed.registry.names(), ['gamma']);
    // A reload with new settings applies them.
    const report = listed.reload({ enabled: ['alpha'], pluginDir: custom.dir, serverless: false });
    assert.deepEqual(listed.registry.names(), ['alpha']);
    assert.deepEqual(report.added, ['alpha']);
    assert.deepEqual(report.removed, ['gamma']);
    custom.remove('gamma');
    custom.remove('.hidden.js');
  });

  it('a custom plugin replaces the built-in of the same name; duplicate custom names fail', () => {
    custom.write('alpha', { priority: 1 });
    custom.write('zz-second', { name: 'alpha', priority: 5 });
    const loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    const report = loader.load();
    assert.equal(loader.registry.loaded('alpha')?.origin, 'custom');
    assert.equal(loader.registry.get('alpha')?.priority, 1);
    assert.ok(report.failed.some((f) => f.error.startsWith('duplicate plugin name alpha')));
    custom.remove('alpha');
    custom.remove('zz-second');
  });

  it('install() checks an upload before it goes live', () => {
    const loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false }, builtins.dir);
    loader.load();
    assert.match(loader.install('up', 'module.exports = {') ?? '', /Unexpected|SyntaxError|end of input/);
    assert.equal(
      loader.install('up', 'module.exports = { name: "other", version: "1", priority: 1, schema: {} };'),
      'the module\'s name is "other", not "up"',
    );
    assert.equal(
      loader.install('up', 'module.exports = { name: "up", version: "1", priority: 1, schema: {} };'),
      undefined,
    );
    assert.equal(loader.registry.has('up'), false, 'not active before a reload');
    loader.reload();
    assert.equal(loader.registry.has('up'), true);
    custom.remove('up');
  });
});

describe('checkPluginModule', () => {
  const base = { name: 'p', version: '1', priority: 1, schema: { type: 'object' } };
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['not an object', 42, /does not export a plugin module object/],
    ['bad name', { ...base, name: 'Bad Name' }, /invalid plugin name "Bad Name"/],
    ['no priority', { ...base, priority: undefined }, 'invalid plugin [p], missing field: priority'],
    ['no version', { ...base, version: undefined }, 'invalid plugin [p] missing field: version'],
    ['no schema', { ...base, schema: undefined }, 'invalid plugin [p] schema field'],
    [
      '_meta in the schema',
      { ...base, schema: { properties: { _meta: {} } } },
      "invalid plugin [p]: found forbidden '_meta' field in the schema",
    ],
    ['phase not a function', { ...base, access: 1 }, 'invalid plugin [p] access field: must be a function'],
    ['phases not a function', { ...base, phases: ['log'] }, 'invalid plugin [p] phases field: must be a function'],
    ['unknown type', { ...base, type: 'magic' }, /type field/],
    ['schema that does not compile', { ...base, schema: { type: 'nonsense' } }, /invalid plugin \[p\] schema: /],
  ];
  for (const [what, exported, message] of cases) {
    it(`refuses a module with ${what}`, () => {
      assert.throws(
        () => checkPluginModule(exported, '/x/p.js'),
        (err: unknown) =>
          err instanceof PluginLoadError &&
          (typeof message === 'string' ? err.message === message : message.test(err.message)),
      );
    });
  }

  it('takes `export default` and sets source', () => {
    const plugin = checkPluginModule({ default: base }, '/x/p.js');
    assert.equal(plugin.name, 'p');
    assert.equal(plugin.source, '/x/p.js');
    assert.ok(Object.isFrozen(plugin));
  });

  it('orders names by priority, then name', () => {
    const registry = new PluginRegistry(1, [
      { plugin: checkPluginModule({ ...base, name: 'b', priority: 5 }, 'b'), origin: 'builtin', file: 'b', digest: '' },
      { plugin: checkPluginModule({ ...base, name: 'a', priority: 5 }, 'a'), origin: 'builtin', file: 'a', digest: '' },
      { plugin: checkPluginModule({ ...base, name: 'c', priority: 9 }, 'c'), origin: 'builtin', file: 'c', digest: '' },
    ]);
    assert.deepEqual(registry.names(), ['c', 'a', 'b']);
  });
});

describe('the built-in plugins', () => {
  it('every file in src/plugins/builtin loads and checks', () => {
    const loader = new PluginLoader({ enabled: undefined, pluginDir: undefined, serverless: true }, BUILTIN_PLUGIN_DIR);
    const report = loader.load();
    assert.deepEqual(report.failed, []);
    assert.ok(loader.registry.size > 0);
    for (const name of SERVERLESS_PLUGINS) {
      if (loader.registry.has(name)) assert.ok(loader.registry.get(name)!.priority !== 0);
    }
  });
});
