import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { injectMeta, RegistryCatalog, validatePluginConf } from '../../../src/plugins/catalog';
import { validateResource } from '../../../src/schema/index';
import { fakePlugin, registryOf } from './support';

const checked = fakePlugin('checked', 10, {
  schema: { type: 'object', properties: { limit: { type: 'integer', minimum: 1 } }, required: ['limit'] },
  consumerSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
  metadataSchema: { type: 'object', properties: { format: { type: 'string' } }, additionalProperties: false },
  check: (conf) => ((conf as { limit: number }).limit > 100 ? 'limit too large' : undefined),
});
const registry = registryOf(1, checked);
const catalog = new RegistryCatalog(() => registry);

describe('plugin catalog', () => {
  it('schema first, then check(); the conf is not modified', () => {
    assert.equal(catalog.validate('checked', {}, 'route'), 'property "limit" is required');
    assert.equal(
      catalog.validate('checked', { limit: 0 }, 'route'),
      'property "limit" validation failed: expected 0 to be at least 1',
    );
    assert.equal(catalog.validate('checked', { limit: 101 }, 'route'), 'limit too large');
    const conf = { limit: 5 };
    assert.equal(catalog.validate('checked', conf, 'route'), undefined);
    assert.deepEqual(conf, { limit: 5 });
    assert.equal(catalog.validate('nope', {}, 'route'), 'unknown plugin [nope]');
  });

  it('consumer and metadata kinds use their schemas', () => {
    assert.equal(catalog.validate('checked', {}, 'consumer'), 'property "key" is required');
    assert.equal(catalog.validate('checked', { key: 'k' }, 'consumer'), undefined);
    assert.equal(catalog.validate('checked', { other: 1 }, 'metadata'), 'additional properties forbidden, found other');
  });

  it('_meta: checked by its injected schema; a bad filter expression; a disabled plugin is accepted', () => {
    assert.equal(
      catalog.validate('checked', { limit: 1, _meta: { priority: 'high' } }, 'route'),
      'property "_meta" validation failed: property "priority" validation failed: wrong type: expected integer, got string',
    );
    assert.match(
      catalog.validate('checked', { limit: 1, _meta: { filter: [['a', 'nope', 1]] } }, 'route') ?? '',
      /^failed to validate the 'vars' expression: /,
    );
    assert.equal(catalog.validate('checked', { _meta: { disable: true } }, 'route'), undefined);
    assert.equal(validatePluginConf(checked, 'text', 'route'), 'invalid plugin conf "text" for plugin [checked]');
  });

  it('schema(): the route schema with _meta, or the consumer and metadata schemas', () => {
    const schema = catalog.schema('checked', 'route')!;
    assert.deepEqual(schema, injectMeta(checked.schema));
    assert.ok((schema.properties as Record<string, unknown>)._meta);
    assert.deepEqual(catalog.schema('checked', 'consumer'), checked.consumerSchema);
    assert.equal(catalog.schema('nope', 'route'), undefined);
  });

  it('the resource validator puts APISIX prefixes around catalog messages', () => {
    const store = { get: () => undefined };
    assert.equal(
      validateResource('routes', { uri: '/a', plugins: { checked: {} } }, { store, plugins: catalog }),
      'failed to check the configuration of plugin checked err: property "limit" is required',
    );
    assert.equal(
      validateResource('plugin_metadata', { id: 'checked', other: 1 }, { store, plugins: catalog, id: 'checked' }),
      'invalid configuration: additional properties forbidden, found other',
    );
  });
});
