// Plugin configuration checks as APISIX makes them (apisix/plugin.lua,
// check_single_plugin_schema): the plugin's JSON Schema with `_meta` injected,
// then the plugin's own check(). Messages are APISIX's: the schema module puts
// `failed to check the configuration of plugin <name> err: ` in front of what
// validate() returns, and says `unknown plugin [<name>]` when has() is false.
//
// One ajv instance for every plugin schema, set up like the resource schemas'
// (src/schema/index.ts), so messages come out of the same formatter.

import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { isValidIpOrCidr } from '../core/cidr';
import { validateExpr } from '../core/expr';
import { logger } from '../core/log';
import type { PluginCatalog, PluginKind } from '../schema/catalog';
import { formatAjvErrors } from '../schema/format';
import type { JsonSchema, PluginModule } from './types';

export type { PluginCatalog, PluginKind } from '../schema/catalog';

const log = logger('plugins');

/** APISIX marks a schema it has injected `_meta` into with this comment. */
const INJECTED_COMMENT = 'this is a mark for our injected plugin schema';

/** `_meta`, accepted by every plugin (APISIX's plugin_injected_schema). */
const metaSchema: JsonSchema = {
  type: 'object',
  properties: {
    disable: { type: 'boolean' },
    error_response: { oneOf: [{ type: 'string' }, { type: 'object' }] },
    priority: { description: 'priority of plugins by customized order', type: 'integer' },
    filter: {
      description: 'filter determines whether the plugin needs to be executed at runtime',
      type: 'array',
    },
    pre_function: { description: 'function to be executed in each phase before execution of plugins', type: 'string' },
  },
};

const ajv = new Ajv({
  allErrors: false,
  useDefaults: true,
  verbose: true, // errors carry the failing value, which the messages quote
  strict: false,
  unicodeRegExp: false, // APISIX patterns are PCRE-style
});
addFormats(ajv);
ajv.addFormat('ip-or-cidr', { type: 'string', validate: (value: string) => isValidIpOrCidr(value) });

/** The schema as APISIX serves and checks it: `_meta` added to the properties of an object schema. */
export function injectMeta(schema: JsonSchema): JsonSchema {
  if (schema.$comment === INJECTED_COMMENT) return schema;
  const properties = (schema.properties ?? {}) as Record<string, unknown>;
  return { ...schema, $comment: INJECTED_COMMENT, properties: { ...properties, _meta: metaSchema } };
}

/** Compiled validators of one plugin module, made once when the module is loaded. */
export interface PluginValidators {
  readonly route: ValidateFunction;
  readonly consumer: ValidateFunction | undefined;
  readonly metadata: ValidateFunction | undefined;
  /** The route schema with `_meta`, for GET /plugins/{name}. */
  readonly routeSchema: JsonSchema;
}

function compile(schema: JsonSchema): ValidateFunction {
  const validate = ajv.compile(schema);
  // ajv keeps every compiled schema in its cache; reloads would pile them up.
  ajv.removeSchema(schema);
  return validate;
}

/** Compile a module's schemas; throws with ajv's message when one does not compile. */
export function compileValidators(plugin: PluginModule): PluginValidators {
  const routeSchema = injectMeta(plugin.schema);
  return {
    route: compile(routeSchema),
    consumer: plugin.consumerSchema === undefined ? undefined : compile(injectMeta(plugin.consumerSchema)),
    metadata: plugin.metadataSchema === undefined ? undefined : compile(plugin.metadataSchema),
    routeSchema,
  };
}

const validatorCache = new WeakMap<PluginModule, PluginValidators>();

export function validatorsOf(plugin: PluginModule): PluginValidators {
  let validators = validatorCache.get(plugin);
  if (validators === undefined) {
    validators = compileValidators(plugin);
    validatorCache.set(plugin, validators);
  }
  return validators;
}

/**
 * Validate one configuration in place (schema defaults are filled in, as the
 * phase functions expect them). Returns the error text APISIX puts after
 * `err: `, or undefined. A consumer of a plugin without a consumer schema is
 * checked against the route schema, as APISIX does.
 */
export function checkPluginConf(plugin: PluginModule, conf: unknown, kind: PluginKind): string | undefined {
  const validators = validatorsOf(plugin);
  let validate: ValidateFunction;
  if (kind === 'metadata') {
    if (validators.metadata === undefined) return undefined;
    validate = validators.metadata;
  } else {
    validate = kind === 'consumer' ? (validators.consumer ?? validators.route) : validators.route;
  }
  if (!validate(conf)) return formatAjvErrors(validate.errors);
  return plugin.check?.(conf, kind);
}

function metaOf(conf: unknown): Record<string, unknown> | undefined {
  if (typeof conf !== 'object' || conf === null) return undefined;
  const meta = (conf as { _meta?: unknown })._meta;
  return typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : undefined;
}

/**
 * Check a stored configuration as the Admin API does: on a copy (nothing is
 * written back), a disabled plugin whose check fails is accepted with a
 * warning, and `_meta.filter` must be a valid vars expression.
 */
export function validatePluginConf(plugin: PluginModule, conf: unknown, kind: PluginKind): string | undefined {
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) {
    return `invalid plugin conf ${JSON.stringify(conf)} for plugin [${plugin.name}]`;
  }
  const copy = structuredClone(conf);
  const err = checkPluginConf(plugin, copy, kind);
  const meta = metaOf(conf);
  if (err !== undefined) {
    if (meta?.disable !== true) return err;
    log.warn(`failed to check the configuration of disabled plugin ${plugin.name}, accepting it anyway`, {
      error: err,
    });
  }
  if (meta?.filter !== undefined) {
    const exprErr = validateExpr(meta.filter);
    if (exprErr !== undefined) return `failed to validate the 'vars' expression: ${exprErr}`;
  }
  return undefined;
}

/** What the catalog reads plugins from: the loader's current registry, which changes on reload. */
export interface PluginSource {
  get(name: string): PluginModule | undefined;
  /** Names by priority, highest first (APISIX's /plugins/list order). */
  names(): string[];
}

/** The Admin API's view of the loaded plugins (src/schema/catalog.ts's PluginCatalog). */
export class RegistryCatalog implements PluginCatalog {
  readonly #source: () => PluginSource;

  /** `source` is asked on every call, so a reload is seen at once. */
  constructor(source: () => PluginSource) {
    this.#source = source;
  }

  has(name: string): boolean {
    return this.#source().get(name) !== undefined;
  }

  validate(name: string, conf: unknown, kind: PluginKind): string | undefined {
    const plugin = this.#source().get(name);
    if (plugin === undefined) return `unknown plugin [${name}]`;
    return validatePluginConf(plugin, conf, kind);
  }

  names(): string[] {
    return this.#source().names();
  }

  schema(name: string, kind: PluginKind): Record<string, unknown> | undefined {
    const plugin = this.#source().get(name);
    if (plugin === undefined) return undefined;
    if (kind === 'consumer') return plugin.consumerSchema === undefined ? undefined : { ...plugin.consumerSchema };
    if (kind === 'metadata') return plugin.metadataSchema === undefined ? undefined : { ...plugin.metadataSchema };
    return { ...validatorsOf(plugin).routeSchema };
  }
}
