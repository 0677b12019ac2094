// JSON Schemas for every Admin API resource, in the shape of APISIX's
// apisix/schema_def.lua so that a body APISIX accepts is accepted here and the
// same fields carry the same defaults. Checks JSON Schema cannot express
// (exclusive pairs, expressions, plugin configs, references, PEM parsing) live
// in src/schema/index.ts.

export type JsonSchema = { [keyword: string]: unknown };

export const idSchema: JsonSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
};

const descSchema: JsonSchema = { type: 'string', maxLength: 256 };
const nameSchema: JsonSchema = { type: 'string', minLength: 1, maxLength: 100 };
const timestampSchema: JsonSchema = { type: 'integer' };

const labelsSchema: JsonSchema = {
  type: 'object',
  patternProperties: {
    '.*': { type: 'string', pattern: '^\\S+$', minLength: 1, maxLength: 256 },
  },
};

// A host name or `*.suffix`; `*` only leading. The character class leaves out
// whitespace and control characters, which the router's host spec relies on.
export const hostSchema: JsonSchema = { type: 'string', pattern: '^\\*?[0-9a-zA-Z-._\\[\\]:]+$' };

// A request path: starts with `/`, no whitespace or control characters.
const uriSchema: JsonSchema = { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/[^\\s\\x00-\\x1f\\x7f]*$' };

const ipOrCidrSchema: JsonSchema = { type: 'string', format: 'ip-or-cidr' };

export const timeoutSchema: JsonSchema = {
  type: 'object',
  properties: {
    connect: { type: 'number', exclusiveMinimum: 0 },
    send: { type: 'number', exclusiveMinimum: 0 },
    read: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['connect', 'send', 'read'],
};

export const pluginsSchema: JsonSchema = {
  type: 'object',
  additionalProperties: { type: 'object' },
};

const httpStatusList = (defaults: number[]): JsonSchema => ({
  type: 'array',
  minItems: 1,
  uniqueItems: true,
  items: { type: 'integer', minimum: 200, maximum: 599 },
  default: defaults,
});

const healthCheckSchema: JsonSchema = {
  type: 'object',
  properties: {
    active: {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http' },
        timeout: { type: 'number', default: 1 },
        concurrency: { type: 'integer', default: 10 },
        host: hostSchema,
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        http_path: { type: 'string', default: '/' },
        https_verify_certificate: { type: 'boolean', default: true },
        req_headers: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } },
        healthy: {
          type: 'object',
          properties: {
            interval: { type: 'integer', minimum: 1, default: 1 },
            http_statuses: httpStatusList([200, 302]),
            successes: { type: 'integer', minimum: 1, maximum: 254, default: 2 },
          },
        },
        unhealthy: {
          type: 'object',
          properties: {
            interval: { type: 'integer', minimum: 1, default: 1 },
            http_statuses: httpStatusList([429, 404, 500, 501, 502, 503, 504, 505]),
            http_failures: { type: 'integer', minimum: 1, maximum: 254, default: 5 },
            tcp_failures: { type: 'integer', minimum: 1, maximum: 254, default: 2 },
            timeouts: { type: 'integer', minimum: 1, maximum: 254, default: 3 },
          },
        },
      },
    },
    passive: {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http' },
        healthy: {
          type: 'object',
          properties: {
            http_statuses: httpStatusList([
              200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
            ]),
            successes: { type: 'integer', minimum: 0, maximum: 254, default: 5 },
          },
        },
        unhealthy: {
          type: 'object',
          properties: {
            http_statuses: httpStatusList([429, 500, 503]),
            tcp_failures: { type: 'integer', minimum: 0, maximum: 254, default: 2 },
            timeouts: { type: 'integer', minimum: 0, maximum: 254, default: 7 },
            http_failures: { type: 'integer', minimum: 0, maximum: 254, default: 5 },
          },
        },
      },
    },
  },
  anyOf: [{ required: ['active'] }, { required: ['active', 'passive'] }],
};

const nodesSchema: JsonSchema = {
  anyOf: [
    {
      type: 'object',
      patternProperties: { '.*': { type: 'integer', minimum: 0 } },
    },
    {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          host: hostSchema,
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          weight: { type: 'integer', minimum: 0 },
          priority: { type: 'integer', default: 0 },
          metadata: { type: 'object' },
        },
        required: ['host', 'port', 'weight'],
      },
    },
  ],
};

export const upstreamSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    nodes: nodesSchema,
    service_name: { type: 'string', minLength: 1, maxLength: 256 },
    discovery_type: { type: 'string' },
    discovery_args: {
      type: 'object',
      properties: {
        namespace_id: { type: 'string' },
        group_name: { type: 'string' },
        metadata: { type: 'object' },
      },
    },
    type: { type: 'string', enum: ['roundrobin', 'chash', 'ewma', 'least_conn'], default: 'roundrobin' },
    hash_on: {
      type: 'string',
      enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'],
      default: 'vars',
    },
    key: { type: 'string' },
    retries: { type: 'integer', minimum: 0 },
    retry_timeout: { type: 'number', minimum: 0 },
    timeout: timeoutSchema,
    pass_host: { type: 'string', enum: ['pass', 'node', 'rewrite'], default: 'pass' },
    upstream_host: hostSchema,
    scheme: {
      type: 'string',
      enum: ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'kafka'],
      default: 'http',
    },
    keepalive_pool: {
      type: 'object',
      properties: {
        size: { type: 'integer', minimum: 1, default: 320 },
        idle_timeout: { type: 'number', minimum: 0, default: 60 },
        requests: { type: 'integer', minimum: 1, default: 1000 },
      },
    },
    checks: healthCheckSchema,
    tls: {
      type: 'object',
      properties: {
        client_cert_id: idSchema,
        client_cert: { type: 'string', minLength: 128, maxLength: 65536 },
        client_key: { type: 'string', minLength: 128, maxLength: 65536 },
        verify: { type: 'boolean', default: false },
      },
      dependencies: { client_cert: ['client_key'], client_key: ['client_cert'] },
    },
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  anyOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
  additionalProperties: false,
};

const methodsSchema: JsonSchema = {
  type: 'array',
  uniqueItems: true,
  items: {
    type: 'string',
    enum: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'],
  },
};

export const routeSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    uri: uriSchema,
    uris: { type: 'array', items: uriSchema, minItems: 1, uniqueItems: true },
    host: hostSchema,
    hosts: { type: 'array', items: hostSchema, minItems: 1, uniqueItems: true },
    remote_addr: ipOrCidrSchema,
    remote_addrs: { type: 'array', items: ipOrCidrSchema, minItems: 1, uniqueItems: true },
    methods: methodsSchema,
    priority: { type: 'integer', default: 0 },
    vars: { type: 'array' },
    filter_func: { type: 'string', minLength: 10, pattern: '^function' },
    plugins: pluginsSchema,
    plugin_config_id: idSchema,
    upstream: upstreamSchema,
    upstream_id: idSchema,
    service_id: idSchema,
    timeout: timeoutSchema,
    enable_websocket: { type: 'boolean' },
    status: { type: 'integer', enum: [1, 0], default: 1 },
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  anyOf: [{ required: ['uri'] }, { required: ['uris'] }],
  additionalProperties: false,
};

export const serviceSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    hosts: { type: 'array', items: hostSchema, minItems: 1, uniqueItems: true },
    plugins: pluginsSchema,
    upstream: upstreamSchema,
    upstream_id: idSchema,
    enable_websocket: { type: 'boolean' },
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  additionalProperties: false,
};

export const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[a-zA-Z0-9_\\-]+$' },
    desc: descSchema,
    labels: labelsSchema,
    plugins: pluginsSchema,
    group_id: idSchema,
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  required: ['username'],
  additionalProperties: false,
};

/** consumer_groups, plugin_configs and global_rules: an id and a set of plugins. */
export const pluginBundleSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    plugins: pluginsSchema,
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  required: ['plugins'],
  additionalProperties: false,
};

/** Plugin metadata is the plugin's own metadata schema; only the id (the plugin name) is common. */
export const pluginMetadataSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[a-zA-Z0-9_\\-]+$' },
  },
  required: ['id'],
};

const certSchema: JsonSchema = { type: 'string', minLength: 128, maxLength: 65536 };
const keySchema: JsonSchema = { type: 'string', minLength: 128, maxLength: 65536 };

export const sslSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    desc: descSchema,
    labels: labelsSchema,
    type: { type: 'string', enum: ['server', 'client'], default: 'server' },
    cert: certSchema,
    key: keySchema,
    certs: { type: 'array', items: certSchema },
    keys: { type: 'array', items: keySchema },
    sni: hostSchema,
    snis: { type: 'array', items: hostSchema, minItems: 1 },
    client: {
      type: 'object',
      properties: {
        ca: certSchema,
        depth: { type: 'integer', minimum: 0, default: 1 },
        skip_mtls_uri_regex: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } },
      },
      required: ['ca'],
    },
    ssl_protocols: {
      type: 'array',
      maxItems: 3,
      uniqueItems: true,
      items: { type: 'string', enum: ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] },
    },
    status: { type: 'integer', enum: [1, 0], default: 1 },
    create_time: timestampSchema,
    update_time: timestampSchema,
  },
  required: ['cert', 'key'],
  additionalProperties: false,
};
