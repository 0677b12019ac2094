// consumer-restriction: allow or reject a request by who it is (the consumer's
// name or group, attached by an auth plugin) or where it goes (route or
// service id), optionally allowing a consumer only some HTTP methods.

import type { PluginContext, PluginModule, PhaseResult } from '../types';

const PLUGIN = 'consumer-restriction';

type RestrictionType = 'consumer_name' | 'service_id' | 'route_id' | 'consumer_group_id';

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];

interface ConsumerRestrictionConf {
  type: RestrictionType;
  blacklist: ReadonlySet<string> | undefined;
  whitelist: ReadonlySet<string> | undefined;
  /** value (e.g. consumer name) -> the methods it may use, from allowed_by_methods. */
  allowedMethods: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  rejectedCode: number;
  /** The rejection body, built once. */
  rejectedBody: { message: string };
  /** The body when the request has no value of `type` (e.g. no consumer attached). */
  missingBody: { message: string };
}

function compile(raw: unknown): ConsumerRestrictionConf {
  const conf = raw as {
    type?: RestrictionType;
    blacklist?: string[];
    whitelist?: string[];
    allowed_by_methods?: { user?: string; methods?: string[] }[];
    rejected_code?: number;
    rejected_msg?: string;
  };
  const type = conf.type ?? 'consumer_name';
  let allowedMethods: Map<string, Set<string>> | undefined;
  if (conf.allowed_by_methods !== undefined && conf.allowed_by_methods.length > 0) {
    allowedMethods = new Map();
    for (const entry of conf.allowed_by_methods) {
      if (entry.user === undefined) continue;
      const methods = allowedMethods.get(entry.user) ?? new Set<string>();
      for (const method of entry.methods ?? []) methods.add(method);
      allowedMethods.set(entry.user, methods);
    }
  }
  return {
    type,
    blacklist: conf.blacklist !== undefined && conf.blacklist.length > 0 ? new Set(conf.blacklist) : undefined,
    whitelist: conf.whitelist !== undefined && conf.whitelist.length > 0 ? new Set(conf.whitelist) : undefined,
    allowedMethods,
    rejectedCode: conf.rejected_code ?? 403,
    rejectedBody: { message: conf.rejected_msg ?? `The ${type} is forbidden.` },
    missingBody: { message: `The request is rejected, please check the ${type} for this request` },
  };
}

function valueOf(type: RestrictionType, ctx: PluginContext): string | undefined {
  switch (type) {
    case 'consumer_name':
      return ctx.consumer?.username;
    case 'consumer_group_id':
      return ctx.consumer?.consumer.group_id;
    case 'route_id':
      return ctx.routeId === '' ? undefined : ctx.routeId;
    case 'service_id':
      return ctx.serviceId === '' ? undefined : ctx.serviceId;
  }
}

function access(conf: ConsumerRestrictionConf, ctx: PluginContext): PhaseResult {
  const value = valueOf(conf.type, ctx);
  if (value === undefined) return ctx.exit(401, conf.missingBody);

  if (conf.blacklist?.has(value)) return ctx.exit(conf.rejectedCode, conf.rejectedBody);

  const whitelisted = conf.whitelist?.has(value) === true;
  let blocked = conf.whitelist !== undefined && !whitelisted;
  // A whitelisted value may use every method; otherwise allowed_by_methods decides.
  if (conf.allowedMethods !== undefined && !whitelisted) {
    if (conf.allowedMethods.get(value)?.has(ctx.method) !== true) blocked = true;
  }
  return blocked ? ctx.exit(conf.rejectedCode, conf.rejectedBody) : undefined;
}

const consumerRestriction: PluginModule<ConsumerRestrictionConf> = {
  name: PLUGIN,
  version: '0.1',
  priority: 2400,
  schema: {
    type: 'object',
    properties: {
      type: {
        type: 'string',
        enum: ['consumer_name', 'service_id', 'route_id', 'consumer_group_id'],
        default: 'consumer_name',
      },
      blacklist: { type: 'array', minItems: 1, items: { type: 'string' } },
      whitelist: { type: 'array', minItems: 1, items: { type: 'string' } },
      allowed_by_methods: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            user: { type: 'string' },
            methods: {
              type: 'array',
              minItems: 1,
              items: { description: 'HTTP method', type: 'string', enum: HTTP_METHODS },
            },
          },
        },
      },
      rejected_code: { type: 'integer', minimum: 200, default: 403 },
      rejected_msg: { type: 'string' },
    },
    anyOf: [{ required: ['blacklist'] }, { required: ['whitelist'] }, { required: ['allowed_by_methods'] }],
  },
  compile,
  access,
};

export default consumerRestriction;
