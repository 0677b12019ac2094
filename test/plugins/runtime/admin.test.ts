// The Admin API over the real plugin catalog: plugin list and schema
// endpoints, PUT /plugins/reload, plugin configuration errors in APISIX's
// words, and the optional plugin upload.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RegistryCatalog } from '../../../src/plugins/catalog';
import { PluginLoader } from '../../../src/plugins/loader';
import { ADMIN_KEY, startAdmin, VIEWER_KEY, type Harness } from '../../admin/harness';
import { pluginDir, type PluginDir } from './support';

const upstream = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };

describe('Admin API with the plugin catalog', () => {
  let custom: PluginDir;
  let loader: PluginLoader;
  let admin: Harness;
  let reloads = 0;

  before(async () => {
    custom = pluginDir();
    loader = new PluginLoader({ enabled: undefined, pluginDir: custom.dir, serverless: false });
    loader.load();
    admin = await startAdmin({
      plugins: new RegistryCatalog(() => loader.registry),
      reloadPlugins: async () => {
        reloads += 1;
        loader.reload();
      },
      uploadPlugin: async (name, source) => {
        const err = loader.install(name, source);
        if (err === undefined) loader.reload();
        return err;
      },
    });
  });
  after(async () => {
    await admin.close();
    custom.close();
  });

  it('GET /plugins/list: the loaded plugins, highest priority first', async () => {
    const reply = await admin.call('GET', '/plugins/list');
    assert.equal(reply.status, 200);
    const names = JSON.parse(reply.text) as string[];
    assert.deepEqual(names, loader.registry.names());
    assert.ok(names.indexOf('key-auth') < names.indexOf('limit-req'));
    assert.ok(!names.includes('serverless-pre-function'), 'serverless plugins are off by default');
    assert.deepEqual(JSON.parse((await admin.call('GET', '/plugins/list?subsystem=stream')).text), []);
    const bad = await admin.call('GET', '/plugins/list?subsystem=udp');
    assert.equal(bad.status, 400);
    assert.equal(bad.text, 'invalid subsystem passed');
  });

  it('GET /plugins/{name} and /schema/plugins/{name}: the schema with _meta injected', async () => {
    const reply = await admin.call('GET', '/plugins/limit-req');
    assert.equal(reply.status, 200);
    const properties = reply.json.properties as Record<string, unknown>;
    assert.ok(properties.rate);
    assert.ok(properties._meta);
    assert.equal(reply.json.$comment, 'this is a mark for our injected plugin schema');
    const viaSchema = await admin.call('GET', '/schema/plugins/limit-req');
    assert.deepEqual(viaSchema.json, reply.json);

    const consumer = await admin.call('GET', '/plugins/key-auth?schema_type=consumer');
    assert.equal(consumer.status, 200);
    assert.deepEqual(consumer.json.required, ['key']);
    const none = await admin.call('GET', '/plugins/limit-req?schema_type=consumer');
    assert.equal(none.status, 400);
    assert.deepEqual(none.json, { error_msg: 'not found schema' });

    assert.deepEqual((await admin.call('GET', '/plugins/nope')).json, { error_msg: 'plugin not found' });
    assert.equal((await admin.call('GET', '/plugins/nope')).status, 404);
    assert.equal((await admin.call('GET', '/schema/plugins/nope')).status, 404);
    const subsystem = await admin.call('GET', '/plugins/limit-req?subsystem=tcp');
    assert.deepEqual(subsystem.json, { error_msg: 'unsupported subsystem: tcp' });

    const all = await admin.call('GET', '/plugins/x?all=true');
    assert.equal(all.status, 200);
    assert.ok((all.json['key-auth'] as { consumer_schema?: unknown }).consumer_schema);
  });

  it('PUT /plugins/reload answers done; other methods get 405', async () => {
    const before = reloads;
    const reply = await admin.call('PUT', '/plugins/reload');
    assert.equal(reply.status, 200);
    assert.equal(reply.text, 'done');
    assert.equal(reloads, before + 1);
    for (const method of ['GET', 'POST', 'DELETE', 'PATCH']) {
      const refused = await admin.call(method, '/plugins/reload');
      assert.equal(refused.status, 405, method);
      assert.deepEqual(refused.json, {
        error_msg: `please use PUT method to reload the plugins, ${method} method is not allowed.`,
      });
    }
    const viewer = await admin.call('PUT', '/plugins/reload', undefined, { 'X-API-KEY': VIEWER_KEY });
    assert.equal(viewer.status, 401);
  });

  it('rejects unknown plugins and bad configurations with APISIX messages', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['/routes/1', { uri: '/a', upstream, plugins: { x: {} } }, 'unknown plugin [x]'],
      [
        '/routes/1',
        { uri: '/a', upstream, plugins: { 'limit-req': {} } },
        'failed to check the configuration of plugin limit-req err: property "rate" is required',
      ],
      [
        '/routes/1',
        {
          uri: '/a',
          upstream,
          plugins: { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', _meta: { disable: 1 } } },
        },
        'failed to check the configuration of plugin limit-req err: property "_meta" validation failed: ' +
          'property "disable" validation failed: wrong type: expected boolean, got number',
      ],
      [
        '/consumers',
        { username: 'jack', plugins: { 'key-auth': {} } },
        'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required',
      ],
      [
        '/global_rules/1',
        { plugins: { 'limit-req': { rate: -1, burst: 0, key: 'remote_addr' } } },
        'failed to check the configuration of plugin limit-req err: property "rate" validation failed: ' +
          'expected -1 to be greater than 0',
      ],
    ];
    for (const [path, body, message] of cases) {
      const reply = await admin.call('PUT', path, body);
      assert.equal(reply.status, 400, path);
      assert.deepEqual(reply.json, { error_msg: message }, path);
    }
  });

  it('accepts a valid configuration, and a disabled plugin whose check fails', async () => {
    const ok = await admin.call('PUT', '/routes/ok', {
      uri: '/ok',
      upstream,
      plugins: {
        'limit-req': { rate: 1, burst: 0, key: 'remote_addr', _meta: { priority: 5, filter: [['arg_a', '==', '1']] } },
      },
    });
    assert.ok(ok.status === 200 || ok.status === 201, ok.text);
    const disabled = await admin.call('PUT', '/routes/off', {
      uri: '/off',
      upstream,
      plugins: { 'limit-req': { _meta: { disable: true } } },
    });
    assert.ok(disabled.status === 200 || disabled.status === 201, disabled.text);
    // The stored value has no schema defaults written into it.
    const stored = await admin.call('GET', '/routes/ok');
    const value = (stored.json.value as { plugins: Record<string, Record<string, unknown>> }).plugins['limit-req'];
    assert.equal(value.rejected_code, undefined);
  });

  it('a plugin file added to plugin_dir is known after PUT /plugins/reload', async () => {
    custom.write('hello-world', { priority: 10 });
    const before = await admin.call('PUT', '/routes/h', { uri: '/h', upstream, plugins: { 'hello-world': {} } });
    assert.deepEqual(before.json, { error_msg: 'unknown plugin [hello-world]' });
    assert.equal((await admin.call('PUT', '/plugins/reload')).text, 'done');
    const after = await admin.call('PUT', '/routes/h', { uri: '/h', upstream, plugins: { 'hello-world': {} } });
    assert.ok(after.status === 200 || after.status === 201, after.text);
    const bad = await admin.call('PUT', '/routes/h', { uri: '/h', upstream, plugins: { 'hello-world': { word: 1 } } });
    assert.deepEqual(bad.json, {
      error_msg:
        'failed to check the configuration of plugin hello-world err: property "word" validation failed: ' +
        'wrong type: expected string, got number',
    });
    custom.remove('hello-world');
    await admin.call('PUT', '/plugins/reload');
    assert.equal((await admin.call('GET', '/plugins/hello-world')).status, 404);
  });

  it('PUT /plugins/upload/{name}: checked before activation, admin keys only', async () => {
    const source = 'module.exports = { name: "uploaded", version: "1.0", priority: 7, schema: { type: "object" } };';
    const viewer = await admin.call('PUT', '/plugins/upload/uploaded', source, { 'X-API-KEY': VIEWER_KEY });
    assert.equal(viewer.status, 401);
    const broken = await admin.call('PUT', '/plugins/upload/uploaded', 'module.exports = {', {
      'X-API-KEY': ADMIN_KEY,
    });
    assert.equal(broken.status, 400);
    assert.match(String(broken.json.error_msg), /^failed to load plugin uploaded: /);
    const misnamed = await admin.call('PUT', '/plugins/upload/other', source, { 'X-API-KEY': ADMIN_KEY });
    assert.deepEqual(misnamed.json, {
      error_msg: 'failed to load plugin other: the module\'s name is "uploaded", not "other"',
    });
    assert.equal((await admin.call('GET', '/plugins/uploaded')).status, 404);
    const ok = await admin.call('PUT', '/plugins/upload/uploaded', source, { 'X-API-KEY': ADMIN_KEY });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.name, 'uploaded');
    assert.equal((await admin.call('GET', '/plugins/uploaded')).status, 200);
    custom.remove('uploaded');
    await admin.call('PUT', '/plugins/reload');
  });
});

describe('Admin API without plugin upload', () => {
  it('PUT /plugins/upload/{name} is refused', async () => {
    const admin = await startAdmin({});
    try {
      const reply = await admin.call('PUT', '/plugins/upload/x', 'module.exports = {}');
      assert.equal(reply.status, 404);
      assert.match(String(reply.json.error_msg), /plugin upload is disabled/);
    } finally {
      await admin.close();
    }
  });
});
