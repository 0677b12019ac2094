// Validation of Admin API resources: the JSON Schema (ajv) first, then the
// checks APISIX makes in apisix/admin/*.lua, each with APISIX's error text.
// Values are checked on a copy so that schema defaults are never stored.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { isValidIpOrCidr } from '../core/cidr';
import { validateExpr } from '../core/expr';
import type { ConfigStore, ResourceName } from '../store/types';
import type { PluginCatalog, PluginKind } from './catalog';
import {
  consumerSchema,
  pluginBundleSchema,
  pluginMetadataSchema,
  routeSchema,
  serviceSchema,
  sslSchema,
  upstreamSchema,
  type JsonSchema,
} from './definitions';
import { formatAjvErrors } from './format';
import { isPlainObject, notAnObjectMessage, type JsonObject } from './json';
import { referencesFrom } from './references';

export type { PluginCatalog, PluginKind } from './catalog';
export { emptyPluginCatalog } from './catalog';
export type { JsonSchema } from './definitions';

export const resourceSchemas: Readonly<Record<ResourceName, JsonSchema>> = {
  routes: routeSchema,
  services: serviceSchema,
  upstreams: upstreamSchema,
  consumers: consumerSchema,
  consumer_groups: pluginBundleSchema,
  global_rules: pluginBundleSchema,
  plugin_configs: pluginBundleSchema,
  plugin_metadata: pluginMetadataSchema,
  ssls: sslSchema,
};

const ajv = new Ajv({
  allErrors: false,
  useDefaults: true,
  verbose: true, // errors carry the failing value and schema, which the messages quote
  strict: false,
  unicodeRegExp: false, // APISIX patterns are PCRE-style, e.g. `[a-zA-Z0-9-_.]`
});
addFormats(ajv, ['ipv4', 'ipv6']);
ajv.addFormat('ip-or-cidr', { type: 'string', validate: (value: string) => isValidIpOrCidr(value) });

const validators = new Map<ResourceName, ValidateFunction>();

function validatorFor(resource: ResourceName): ValidateFunction {
  let validate = validators.get(resource);
  if (!validate) {
    validate = ajv.compile(resourceSchemas[resource]);
    validators.set(resource, validate);
  }
  return validate;
}

/** What validation needs from the store: lookups for referenced resources. */
export interface ValidationContext {
  store: Pick<ConfigStore, 'get'>;
  plugins?: PluginCatalog;
  /** The id (or username / plugin name) the value is stored under. */
  id?: string;
  /** Check upstream_id, service_id, plugin_config_id and group_id against the store (default true). */
  checkReferences?: boolean;
}

/** `routes` -> `route`, `consumer_groups` -> `consumer_group`, `plugin_metadata` stays. */
export function singular(resource: ResourceName): string {
  return resource.endsWith('s') ? resource.slice(0, -1) : resource;
}

function checkExclusive(conf: JsonObject, one: string, many: string): string | undefined {
  if (conf[one] !== undefined && conf[many] !== undefined) return `only one of ${one} or ${many} is allowed`;
  return undefined;
}

function checkPlugins(conf: JsonObject, kind: PluginKind, ctx: ValidationContext): string | undefined {
  const plugins = conf.plugins;
  if (!isPlainObject(plugins) || !ctx.plugins) return undefined;
  for (const [name, pluginConf] of Object.entries(plugins)) {
    if (!ctx.plugins.has(name)) return `unknown plugin [${name}]`;
    const err = ctx.plugins.validate(name, pluginConf, kind);
    if (err !== undefined) return `failed to check the configuration of plugin ${name} err: ${err}`;
  }
  return undefined;
}

/** That every item `conf` refers to exists, in REFERENCES order. */
function checkReferences(resource: ResourceName, conf: JsonObject, ctx: ValidationContext): string | undefined {
  if (ctx.checkReferences === false) return undefined;
  for (const { field, to, label } of referencesFrom(resource)) {
    const id = conf[field];
    if (id !== undefined && !ctx.store.get(to, String(id))) {
      return `failed to fetch ${label} info by ${label} id [${String(id)}], response code: 404`;
    }
  }
  return undefined;
}

const nodeAddress = /^(\[[0-9a-fA-F:.]+\]|[0-9a-zA-Z-._]+)(:(\d{1,5}))?$/;

/** The checks of APISIX's check_upstream_conf beyond the schema. `upstream` has its defaults applied. */
function checkUpstream(upstream: JsonObject): string | undefined {
  if (upstream.type === 'chash' && upstream.hash_on !== 'consumer' && upstream.key === undefined) {
    return 'missing key';
  }
  if (upstream.pass_host === 'rewrite' && !upstream.upstream_host) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }
  const nodes = upstream.nodes;
  if (isPlainObject(nodes)) {
    for (const address of Object.keys(nodes)) {
      const match = nodeAddress.exec(address);
      const port = match?.[3] === undefined ? 1 : Number(match[3]);
      if (!match || port < 1 || port > 65535) return `invalid upstream node address: ${address}`;
    }
  }
  return undefined;
}

function checkPem(conf: JsonObject): string | undefined {
  const certs = [conf.cert, ...(Array.isArray(conf.certs) ? conf.certs : [])];
  const keys = [conf.key, ...(Array.isArray(conf.keys) ? conf.keys : [])];
  if (certs.length !== keys.length) return 'mismatched number of certs and keys';
  for (let i = 0; i < certs.length; i++) {
    const certPem = String(certs[i]);
    const keyPem = String(keys[i]);
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) return 'failed to parse cert: not a PEM certificate';
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) return 'failed to parse key: not a PEM private key';
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (err) {
      return `failed to parse cert: ${(err as Error).message}`;
    }
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      return `failed to parse key: ${(err as Error).message}`;
    }
    if (!cert.checkPrivateKey(key)) return 'failed to match cert and key: the key does not belong to the certificate';
  }
  return undefined;
}

function checkRoute(conf: JsonObject, ctx: ValidationContext): string | undefined {
  const err =
    checkExclusive(conf, 'uri', 'uris') ??
    checkExclusive(conf, 'host', 'hosts') ??
    checkExclusive(conf, 'remote_addr', 'remote_addrs');
  if (err) return err;
  // Palisade does not run Lua; a route whose filter would be silently skipped
  // would match more traffic than its author meant, so it is refused.
  if (conf.filter_func !== undefined) return 'filter_func is not supported: Palisade does not execute Lua';
  if (conf.vars !== undefined) {
    const exprErr = validateExpr(conf.vars);
    if (exprErr !== undefined) return `failed to validate the 'vars' expression: ${exprErr}`;
  }
  if (isPlainObject(conf.upstream)) {
    const upstreamErr = checkUpstream(conf.upstream);
    if (upstreamErr) return upstreamErr;
  }
  return checkReferences('routes', conf, ctx) ?? checkPlugins(conf, 'route', ctx);
}

function checkService(conf: JsonObject, ctx: ValidationContext): string | undefined {
  if (isPlainObject(conf.upstream)) {
    const upstreamErr = checkUpstream(conf.upstream);
    if (upstreamErr) return upstreamErr;
  }
  return checkReferences('services', conf, ctx) ?? checkPlugins(conf, 'route', ctx);
}

function checkConsumer(conf: JsonObject, ctx: ValidationContext): string | undefined {
  const pluginErr = checkPlugins(conf, 'consumer', ctx);
  if (pluginErr) return `invalid plugins configuration: ${pluginErr}`;
  return checkReferences('consumers', conf, ctx);
}

function checkPluginMetadata(conf: JsonObject, ctx: ValidationContext): string | undefined {
  const name = ctx.id ?? String(conf.id);
  if (!ctx.plugins) return undefined;
  if (!ctx.plugins.has(name)) return `unknown plugin [${name}]`;
  const metadata = { ...conf };
  delete metadata.id;
  const err = ctx.plugins.validate(name, metadata, 'metadata');
  if (err !== undefined) return `invalid configuration: ${err}`;
  return undefined;
}

function checkSsl(conf: JsonObject): string | undefined {
  if (conf.type !== 'client' && conf.sni === undefined && conf.snis === undefined) {
    return 'invalid configuration: object matches none of the required: ["sni","key","cert"] or ["snis","key","cert"]';
  }
  return checkExclusive(conf, 'sni', 'snis') ?? checkPem(conf);
}

/**
 * Validate one resource body. Returns APISIX's `error_msg` text, or undefined
 * when the value is valid. `value` is not modified.
 */
export function validateResource(resource: ResourceName, value: unknown, ctx: ValidationContext): string | undefined {
  if (!isPlainObject(value)) return notAnObjectMessage(value);
  const conf = structuredClone(value);
  const validate = validatorFor(resource);
  if (!validate(conf)) return `invalid configuration: ${formatAjvErrors(validate.errors)}`;
  switch (resource) {
    case 'routes':
      return checkRoute(conf, ctx);
    case 'services':
      return checkService(conf, ctx);
    case 'upstreams':
      return checkUpstream(conf);
    case 'consumers':
      return checkConsumer(conf, ctx);
    case 'consumer_groups':
    case 'global_rules':
    case 'plugin_configs':
      return checkPlugins(conf, 'route', ctx);
    case 'plugin_metadata':
      return checkPluginMetadata(conf, ctx);
    case 'ssls':
      return checkSsl(conf);
  }
}
