// JSON Schemas for every Admin API resource, in the shape of APISIX's
// apisix/schema_def.lua so that a body APISIX accepts is accepted here and the
// same fields carry the same defaults. They are built with TypeBox, so each
// schema is also the TypeScript type of the resource (src/schema/types.ts):
// one source for both. Checks JSON Schema cannot express (exclusive pairs,
// expressions, plugin configs, references, PEM parsing) live in
// src/schema/index.ts.

import { Type, type TSchema } from '@sinclair/typebox';
import { anyArray, anyObject, integerEnum, objectOf, stringEnum, stringMap } from './builders';

export type JsonSchema = TSchema;

const { Optional } = Type;

/**
 * A string or a positive integer in a body. The type says string: the Admin
 * API stores an item's id and its references to others as strings.
 */
export const idSchema = Type.Unsafe<string>(
  Type.Union([
    Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' }),
    Type.Integer({ minimum: 1 }),
  ]),
);

const descSchema = Type.String({ maxLength: 256 });
const nameSchema = Type.String({ minLength: 1, maxLength: 100 });
const timestampSchema = Type.Integer();
const labelsSchema = stringMap(Type.String({ pattern: '^\\S+$', minLength: 1, maxLength: 256 }));

/** The fields every named resource starts with, in APISIX's order. */
const identityFields = {
  id: Optional(idSchema),
  name: Optional(nameSchema),
  desc: Optional(descSchema),
  labels: Optional(labelsSchema),
};

/** The fields the Admin API stamps on every stored item (seconds since the epoch). */
const timestampFields = {
  create_time: Optional(timestampSchema),
  update_time: Optional(timestampSchema),
};

// A host name or `*.suffix`; `*` only leading. The character class leaves out
// whitespace and control characters, which the router's host spec relies on.
export const hostSchema = Type.String({ pattern: '^\\*?[0-9a-zA-Z-._\\[\\]:]+$' });

/** A non-empty list of distinct hosts. */
const hostListSchema = Type.Array(hostSchema, { minItems: 1, uniqueItems: true });

// A request path: starts with `/`, no whitespace or control characters.
const uriSchema = Type.String({ minLength: 1, maxLength: 4096, pattern: '^/[^\\s\\x00-\\x1f\\x7f]*$' });

const ipOrCidrSchema = Type.String({ format: 'ip-or-cidr' });

const portSchema = Type.Integer({ minimum: 1, maximum: 65535 });

/** Seconds, fractions allowed, as APISIX. */
export const timeoutSchema = Type.Object({
  connect: Type.Number({ exclusiveMinimum: 0 }),
  send: Type.Number({ exclusiveMinimum: 0 }),
  read: Type.Number({ exclusiveMinimum: 0 }),
});

/** Plugin name -> its configuration, which the plugin catalog checks. */
export const pluginsSchema = objectOf(anyObject());

const httpStatusList = (defaults: number[]) =>
  Type.Array(Type.Integer({ minimum: 200, maximum: 599 }), { minItems: 1, uniqueItems: true, default: defaults });

/** 1..254 as a health checker counter; `minimum` is 0 for passive checks. */
const counter = (minimum: number, defaultValue: number) =>
  Type.Integer({ minimum, maximum: 254, default: defaultValue });

const healthCheckKind = () => stringEnum(['http', 'https', 'tcp'], { default: 'http' });

const healthCheckSchema = Type.Object(
  {
    active: Optional(
      Type.Object({
        type: Optional(healthCheckKind()),
        timeout: Optional(Type.Number({ default: 1 })),
        concurrency: Optional(Type.Integer({ default: 10 })),
        host: Optional(hostSchema),
        port: Optional(portSchema),
        http_path: Optional(Type.String({ default: '/' })),
        https_verify_certificate: Optional(Type.Boolean({ default: true })),
        req_headers: Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
        healthy: Optional(
          Type.Object({
            interval: Optional(Type.Integer({ minimum: 1, default: 1 })),
            http_statuses: Optional(httpStatusList([200, 302])),
            successes: Optional(counter(1, 2)),
          }),
        ),
        unhealthy: Optional(
          Type.Object({
            interval: Optional(Type.Integer({ minimum: 1, default: 1 })),
            http_statuses: Optional(httpStatusList([429, 404, 500, 501, 502, 503, 504, 505])),
            http_failures: Optional(counter(1, 5)),
            tcp_failures: Optional(counter(1, 2)),
            timeouts: Optional(counter(1, 3)),
          }),
        ),
      }),
    ),
    passive: Optional(
      Type.Object({
        type: Optional(healthCheckKind()),
        healthy: Optional(
          Type.Object({
            http_statuses: Optional(
              httpStatusList([
                200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
              ]),
            ),
            successes: Optional(counter(0, 5)),
          }),
        ),
        unhealthy: Optional(
          Type.Object({
            http_statuses: Optional(httpStatusList([429, 500, 503])),
            tcp_failures: Optional(counter(0, 2)),
            timeouts: Optional(counter(0, 7)),
            http_failures: Optional(counter(0, 5)),
          }),
        ),
      }),
    ),
  },
  { anyOf: [{ required: ['active'] }, { required: ['active', 'passive'] }] },
);

export const upstreamNodeSchema = Type.Object({
  host: hostSchema,
  port: portSchema,
  weight: Type.Integer({ minimum: 0 }),
  priority: Optional(Type.Integer({ default: 0 })),
  metadata: Optional(anyObject()),
});

/** `{"host:port": weight}` or a node list; the data plane normalises both to a list. */
const nodesSchema = Type.Union([stringMap(Type.Integer({ minimum: 0 })), Type.Array(upstreamNodeSchema)]);

/** Stored without defaults: a missing field means the data plane's default. */
export const keepalivePoolSchema = Type.Object({
  size: Optional(Type.Integer({ minimum: 1, default: 320 })),
  idle_timeout: Optional(Type.Number({ minimum: 0, default: 60 })), // seconds
  requests: Optional(Type.Integer({ minimum: 1, default: 1000 })),
});

const pemSchema = Type.String({ minLength: 128, maxLength: 65536 });

export const upstreamSchema = Type.Object(
  {
    ...identityFields,
    nodes: Optional(nodesSchema),
    service_name: Optional(Type.String({ minLength: 1, maxLength: 256 })),
    discovery_type: Optional(Type.String()),
    discovery_args: Optional(
      Type.Object({
        namespace_id: Optional(Type.String()),
        group_name: Optional(Type.String()),
        metadata: Optional(anyObject()),
      }),
    ),
    type: Optional(stringEnum(['roundrobin', 'chash', 'ewma', 'least_conn'], { default: 'roundrobin' })),
    hash_on: Optional(stringEnum(['vars', 'header', 'cookie', 'consumer', 'vars_combinations'], { default: 'vars' })),
    key: Optional(Type.String()),
    retries: Optional(Type.Integer({ minimum: 0 })),
    retry_timeout: Optional(Type.Number({ minimum: 0 })),
    timeout: Optional(timeoutSchema),
    pass_host: Optional(stringEnum(['pass', 'node', 'rewrite'], { default: 'pass' })),
    upstream_host: Optional(hostSchema),
    scheme: Optional(stringEnum(['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'kafka'], { default: 'http' })),
    keepalive_pool: Optional(keepalivePoolSchema),
    checks: Optional(healthCheckSchema),
    tls: Optional(
      Type.Object(
        {
          client_cert_id: Optional(idSchema),
          client_cert: Optional(pemSchema),
          client_key: Optional(pemSchema),
          verify: Optional(Type.Boolean({ default: false })),
        },
        { dependencies: { client_cert: ['client_key'], client_key: ['client_cert'] } },
      ),
    ),
    ...timestampFields,
  },
  {
    anyOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
    additionalProperties: false,
  },
);

// Typed string[] rather than the enum's names, so that a method list built at run time still fits a Route.
const methodsSchema = Type.Unsafe<string[]>(
  Type.Array(stringEnum(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE']), {
    uniqueItems: true,
  }),
);

/** A lua-resty-expr expression: `[var, op, val]`, `[var, "!", op, val]`, or nested with AND/OR heads. */
export const varsSchema = anyArray();

export const routeSchema = Type.Object(
  {
    ...identityFields,
    uri: Optional(uriSchema),
    uris: Optional(Type.Array(uriSchema, { minItems: 1, uniqueItems: true })),
    host: Optional(hostSchema),
    hosts: Optional(hostListSchema),
    remote_addr: Optional(ipOrCidrSchema),
    remote_addrs: Optional(Type.Array(ipOrCidrSchema, { minItems: 1, uniqueItems: true })),
    methods: Optional(methodsSchema),
    priority: Optional(Type.Integer({ default: 0 })),
    vars: Optional(varsSchema),
    filter_func: Optional(Type.String({ minLength: 10, pattern: '^function' })),
    plugins: Optional(pluginsSchema),
    plugin_config_id: Optional(idSchema),
    upstream: Optional(upstreamSchema),
    upstream_id: Optional(idSchema),
    service_id: Optional(idSchema),
    timeout: Optional(timeoutSchema),
    enable_websocket: Optional(Type.Boolean()),
    status: Optional(integerEnum([1, 0], { default: 1 })),
    ...timestampFields,
  },
  { anyOf: [{ required: ['uri'] }, { required: ['uris'] }], additionalProperties: false },
);

export const serviceSchema = Type.Object(
  {
    ...identityFields,
    hosts: Optional(hostListSchema),
    plugins: Optional(pluginsSchema),
    upstream: Optional(upstreamSchema),
    upstream_id: Optional(idSchema),
    enable_websocket: Optional(Type.Boolean()),
    ...timestampFields,
  },
  { additionalProperties: false },
);

/** A consumer's username, and a plugin metadata's id (the plugin name). */
const plainNameSchema = Type.String({ minLength: 1, maxLength: 100, pattern: '^[a-zA-Z0-9_\\-]+$' });

export const consumerSchema = Type.Object(
  {
    username: plainNameSchema,
    desc: Optional(descSchema),
    labels: Optional(labelsSchema),
    plugins: Optional(pluginsSchema),
    group_id: Optional(idSchema),
    ...timestampFields,
  },
  { additionalProperties: false },
);

/** consumer_groups, plugin_configs and global_rules: an id and a set of plugins. */
export const pluginBundleSchema = Type.Object(
  {
    ...identityFields,
    plugins: pluginsSchema,
    ...timestampFields,
  },
  { additionalProperties: false },
);

/** Plugin metadata is the plugin's own metadata schema; only the id (the plugin name) is common. */
export const pluginMetadataSchema = Type.Object({ id: plainNameSchema });

export const sslSchema = Type.Object(
  {
    id: Optional(idSchema),
    desc: Optional(descSchema),
    labels: Optional(labelsSchema),
    type: Optional(stringEnum(['server', 'client'], { default: 'server' })),
    cert: pemSchema,
    key: pemSchema,
    certs: Optional(Type.Array(pemSchema)),
    keys: Optional(Type.Array(pemSchema)),
    sni: Optional(hostSchema),
    snis: Optional(Type.Array(hostSchema, { minItems: 1 })),
    client: Optional(
      Type.Object({
        ca: pemSchema,
        depth: Optional(Type.Integer({ minimum: 0, default: 1 })),
        skip_mtls_uri_regex: Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
      }),
    ),
    ssl_protocols: Optional(
      Type.Array(stringEnum(['TLSv1.1', 'TLSv1.2', 'TLSv1.3']), { maxItems: 3, uniqueItems: true }),
    ),
    status: Optional(integerEnum([1, 0], { default: 1 })),
    ...timestampFields,
  },
  { additionalProperties: false },
);
