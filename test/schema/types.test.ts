// Pins the link between the resource JSON Schemas and the resource types:
// the types are derived from the schemas (src/schema/definitions.ts), the
// field lists in src/schema/types.ts must name every key of their type (a
// compile-time check below), and each schema's properties must be exactly its
// list (a run-time check). The shapes the data plane and stores rely on are
// pinned at compile time too, and typed values pass validation.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceSchemas, validateResource } from '../../src/schema/index';
import {
  consumerFields,
  pluginBundleFields,
  pluginMetadataFields,
  routeFields,
  serviceFields,
  sslFields,
  upstreamFields,
  type Consumer,
  type ConsumerGroup,
  type GlobalRule,
  type KeepalivePool,
  type PluginBundle,
  type PluginConfig,
  type PluginMap,
  type PluginMetadata,
  type ResourceId,
  type Route,
  type Service,
  type Ssl,
  type Upstream,
  type UpstreamNode,
  type UpstreamTimeout,
  type VarsExpr,
} from '../../src/schema/types';
import { RESOURCES, type ResourceName } from '../../src/store/types';

// ---- compile-time checks: this file does not build when one fails ----

/** True when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<_T extends true>(): void {}

// Each field list names every key of its type (`satisfies` in types.ts already refuses names that are not keys).
expectType<Equal<(typeof routeFields)[number], keyof Route>>();
expectType<Equal<(typeof serviceFields)[number], keyof Service>>();
expectType<Equal<(typeof upstreamFields)[number], keyof Upstream>>();
expectType<Equal<(typeof consumerFields)[number], keyof Consumer>>();
expectType<Equal<(typeof pluginBundleFields)[number], keyof PluginBundle>>();
expectType<Equal<(typeof pluginMetadataFields)[number], keyof PluginMetadata>>();
expectType<Equal<(typeof sslFields)[number], keyof Ssl>>();

// The shapes src/dataplane, src/store and src/gateway read.
expectType<Equal<ResourceId, string>>();
expectType<
  Equal<
    UpstreamNode,
    { host: string; port: number; weight: number; priority?: number; metadata?: Record<string, unknown> }
  >
>();
expectType<Equal<UpstreamTimeout, { connect: number; send: number; read: number }>>();
expectType<Equal<KeepalivePool, { size?: number; idle_timeout?: number; requests?: number }>>();
expectType<Equal<PluginMap, Record<string, Record<string, unknown>>>>();
expectType<Equal<VarsExpr, unknown[]>>();
expectType<Equal<Upstream['nodes'], Record<string, number> | UpstreamNode[] | undefined>>();
expectType<Equal<Upstream['type'], 'roundrobin' | 'chash' | 'ewma' | 'least_conn' | undefined>>();
expectType<Equal<Upstream['hash_on'], 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations' | undefined>>();
expectType<Equal<Upstream['pass_host'], 'pass' | 'node' | 'rewrite' | undefined>>();
expectType<
  Equal<Upstream['scheme'], 'http' | 'https' | 'grpc' | 'grpcs' | 'tcp' | 'tls' | 'udp' | 'kafka' | undefined>
>();
expectType<Equal<Upstream['timeout'], UpstreamTimeout | undefined>>();
expectType<Equal<Route['status'], 0 | 1 | undefined>>();
expectType<Equal<Route['methods'], string[] | undefined>>();
expectType<Equal<Route['labels'], Record<string, string> | undefined>>();
expectType<Equal<Route['upstream'], Upstream | undefined>>();
expectType<Equal<Route['upstream_id'], string | undefined>>();
expectType<Equal<Service['upstream'], Upstream | undefined>>();
expectType<Equal<Consumer['username'], string>>();
expectType<Equal<PluginBundle['plugins'], PluginMap>>();
expectType<Equal<ConsumerGroup, PluginBundle>>();
expectType<Equal<GlobalRule, PluginBundle>>();
expectType<Equal<PluginConfig, PluginBundle>>();
expectType<Equal<Ssl['type'], 'server' | 'client' | undefined>>();
expectType<Equal<Ssl['cert'], string>>();

// ---- run-time checks ----

const fieldsByResource: Record<ResourceName, readonly string[]> = {
  routes: routeFields,
  services: serviceFields,
  upstreams: upstreamFields,
  consumers: consumerFields,
  consumer_groups: pluginBundleFields,
  global_rules: pluginBundleFields,
  plugin_configs: pluginBundleFields,
  plugin_metadata: pluginMetadataFields,
  ssls: sslFields,
};

function schemaProperties(resource: ResourceName): string[] {
  const properties = (resourceSchemas[resource] as { properties?: Record<string, unknown> }).properties;
  return Object.keys(properties ?? {});
}

const upstream: Upstream = {
  type: 'chash',
  hash_on: 'header',
  key: 'x-user',
  nodes: [{ host: '127.0.0.1', port: 1980, weight: 1, priority: 0 }],
  timeout: { connect: 1, send: 2.5, read: 3 },
  keepalive_pool: { size: 8 },
  pass_host: 'rewrite',
  upstream_host: 'example.com',
  labels: { team: 'edge' },
};

/** One typed value of each resource that its schema accepts. */
const typedValues: Array<[ResourceName, Record<string, unknown>]> = [
  ['upstreams', upstream satisfies Upstream],
  [
    'routes',
    {
      uri: '/typed',
      methods: ['GET', 'POST'],
      hosts: ['a.example.com'],
      vars: [['arg_name', '==', 'json']],
      plugins: { 'limit-count': { count: 1 } },
      upstream,
      status: 0,
      priority: 3,
    } satisfies Route,
  ],
  ['services', { hosts: ['b.example.com'], upstream_id: 'u1', enable_websocket: true } satisfies Service],
  ['consumers', { username: 'jack', plugins: {}, group_id: 'g1' } satisfies Consumer],
  ['consumer_groups', { plugins: {}, desc: 'typed' } satisfies ConsumerGroup],
  ['global_rules', { plugins: {} } satisfies GlobalRule],
  ['plugin_configs', { plugins: {}, name: 'typed' } satisfies PluginConfig],
  ['plugin_metadata', { id: 'prometheus' } satisfies PluginMetadata],
];

const noStore = { get: () => undefined };

describe('resource schemas and types', () => {
  it('each schema has exactly the top-level properties its type lists, in order', () => {
    for (const resource of RESOURCES) {
      assert.deepEqual(schemaProperties(resource), [...fieldsByResource[resource]], resource);
    }
  });

  it('typed values pass their schema', () => {
    for (const [resource, value] of typedValues) {
      assert.equal(validateResource(resource, value, { store: noStore, checkReferences: false }), undefined, resource);
    }
  });

  it('a field outside the type is refused by the schema', () => {
    for (const [resource, value] of typedValues) {
      if (resource === 'plugin_metadata') continue; // the plugin's own metadata schema owns the other fields
      const err = validateResource(resource, { ...value, not_a_field: 1 }, { store: noStore, checkReferences: false });
      assert.equal(err, 'invalid configuration: additional properties forbidden, found not_a_field', resource);
    }
  });

  it('serves the JSON APISIX spells: enums as `enum`, maps as `.*` patternProperties', () => {
    const route = JSON.parse(JSON.stringify(resourceSchemas.routes)) as {
      properties: Record<string, Record<string, unknown>>;
    };
    assert.deepEqual(route.properties.status, { type: 'integer', enum: [1, 0], default: 1 });
    assert.deepEqual(route.properties.vars, { type: 'array' });
    assert.deepEqual(route.properties.plugins, { type: 'object', additionalProperties: { type: 'object' } });
    assert.deepEqual(Object.keys(route.properties.labels.patternProperties as object), ['.*']);
    assert.deepEqual(route.properties.id, {
      anyOf: [
        { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
        { type: 'integer', minimum: 1 },
      ],
    });
    const upstreamJson = route.properties.upstream as { properties: Record<string, Record<string, unknown>> };
    assert.deepEqual(upstreamJson.properties.pass_host, {
      type: 'string',
      enum: ['pass', 'node', 'rewrite'],
      default: 'pass',
    });
  });

  it('keeps `required` as APISIX orders it', () => {
    const required = (resource: ResourceName) => (resourceSchemas[resource] as { required?: string[] }).required;
    assert.deepEqual(required('ssls'), ['cert', 'key']);
    assert.deepEqual(required('consumers'), ['username']);
    assert.deepEqual(required('plugin_configs'), ['plugins']);
    assert.equal(required('routes'), undefined);
    assert.deepEqual(resourceSchemas.routes.anyOf, [{ required: ['uri'] }, { required: ['uris'] }]);
  });
});
