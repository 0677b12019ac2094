// cors: Cross-Origin Resource Sharing headers (APISIX's cors). A preflight
// (OPTIONS) is answered 200 at once; every response, that answer included,
// gets the headers in header_filter (which runs on exits too). The allowed origin is the configured one when it matches
// the request's Origin ("*" matches any; "**" echoes the request's), one of a
// comma-separated list, a match of allow_origins_by_regex, or one of the
// origin lists named by allow_origins_by_metadata.

import { pcreToRegExp } from '../../core/expr';
import type { JsonSchema, PluginContext, PluginEnv, PluginModule } from '../types';

const ALL_METHODS = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    allow_origins: { type: 'string', pattern: '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$', default: '*' },
    allow_methods: { type: 'string', default: '*' },
    allow_headers: { type: 'string', default: '*' },
    expose_headers: { type: 'string' },
    max_age: { type: 'integer', default: 5 },
    allow_credential: { type: 'boolean', default: false },
    allow_origins_by_metadata: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      minItems: 1,
      uniqueItems: true,
    },
    allow_origins_by_regex: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 4096 },
      minItems: 1,
      uniqueItems: true,
    },
    timing_allow_origins: { type: 'string', pattern: '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$' },
    timing_allow_origins_by_regex: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 4096 },
      minItems: 1,
      uniqueItems: true,
    },
  },
};

const metadataSchema: JsonSchema = {
  type: 'object',
  properties: {
    allow_origins: {
      type: 'object',
      additionalProperties: { type: 'string', pattern: '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$' },
    },
  },
};

interface CorsConf {
  allow_origins?: string;
  allow_methods?: string;
  allow_headers?: string;
  expose_headers?: string;
  max_age?: number;
  allow_credential?: boolean;
  allow_origins_by_metadata?: string[];
  allow_origins_by_regex?: string[];
  timing_allow_origins?: string;
  timing_allow_origins_by_regex?: string[];
}

/** An origin rule: "*", "**", one origin, or a set of them. */
interface OriginRule {
  readonly any: boolean;
  readonly echo: boolean;
  readonly origins: ReadonlySet<string>;
}

export interface CompiledCors {
  readonly origins: OriginRule;
  readonly originsByRegex: RegExp | undefined;
  /** Origins from the metadata lists named by allow_origins_by_metadata. */
  readonly originsByMetadata: ReadonlySet<string> | undefined;
  readonly timingOrigins: OriginRule | undefined;
  readonly timingOriginsByRegex: RegExp | undefined;
  readonly allowMethods: string;
  /** Undefined for "**": echo Access-Control-Request-Headers. */
  readonly allowHeaders: string | undefined;
  readonly exposeHeaders: string | undefined;
  readonly maxAge: string;
  readonly allowCredential: boolean;
}

function originRule(value: string): OriginRule {
  const origins = new Set(
    value
      .split(',')
      .map((origin) => origin.trim())
      .filter((origin) => origin !== ''),
  );
  return { any: value === '*', echo: value === '**', origins };
}

function joinedRegex(patterns: readonly string[] | undefined): RegExp | undefined {
  if (patterns === undefined) return undefined;
  const sources = patterns.map((pattern) => `(?:${pcreToRegExp(pattern, false)?.source ?? '(?!)'})`);
  return new RegExp(`^(?:${sources.join('|')})$`);
}

/** The Access-Control-Allow-Origin value for this request's origin, or undefined for none. */
function allowedOrigin(compiled: CompiledCors, origin: string | undefined): string | undefined {
  if (compiled.originsByMetadata !== undefined && origin !== undefined && compiled.originsByMetadata.has(origin)) {
    return origin;
  }
  if (compiled.originsByRegex !== undefined) {
    return origin !== undefined && compiled.originsByRegex.test(origin) ? origin : undefined;
  }
  const rule = compiled.origins;
  if (rule.echo) return origin ?? '*';
  if (rule.any) return '*';
  return origin !== undefined && rule.origins.has(origin) ? origin : undefined;
}

function timingOrigin(compiled: CompiledCors, origin: string | undefined): string | undefined {
  if (compiled.timingOriginsByRegex !== undefined) {
    return origin !== undefined && compiled.timingOriginsByRegex.test(origin) ? origin : undefined;
  }
  const rule = compiled.timingOrigins;
  if (rule === undefined) return undefined;
  if (rule.echo) return origin ?? '*';
  if (rule.any) return '*';
  return origin !== undefined && rule.origins.has(origin) ? origin : undefined;
}

/** The CORS response headers for this request; undefined when its origin is not allowed. */
export function corsHeaders(compiled: CompiledCors, ctx: PluginContext): Record<string, string> | undefined {
  const origin = ctx.header('origin');
  const timing = timingOrigin(compiled, origin);
  const allowed = allowedOrigin(compiled, origin);
  if (allowed === undefined) return timing === undefined ? undefined : { 'Timing-Allow-Origin': timing };
  const headers: Record<string, string> = {
    'Access-Control-Allow-Origin': allowed,
    'Access-Control-Allow-Methods': compiled.allowMethods,
    'Access-Control-Max-Age': compiled.maxAge,
    'Access-Control-Allow-Headers': compiled.allowHeaders ?? ctx.header('access-control-request-headers') ?? '',
  };
  if (allowed !== '*') headers.Vary = 'Origin';
  if (compiled.exposeHeaders !== undefined && compiled.exposeHeaders !== '') {
    headers['Access-Control-Expose-Headers'] = compiled.exposeHeaders;
  }
  if (compiled.allowCredential) headers['Access-Control-Allow-Credentials'] = 'true';
  if (timing !== undefined) headers['Timing-Allow-Origin'] = timing;
  return headers;
}

function compile(raw: unknown, env: PluginEnv): CompiledCors {
  const conf = raw as CorsConf;
  let originsByMetadata: Set<string> | undefined;
  if (conf.allow_origins_by_metadata !== undefined) {
    originsByMetadata = new Set();
    const lists = (env.metadata?.allow_origins ?? {}) as Record<string, string>;
    for (const name of conf.allow_origins_by_metadata) {
      for (const origin of originRule(lists[name] ?? '').origins) originsByMetadata.add(origin);
    }
  }
  const allowMethods = conf.allow_methods ?? '*';
  const allowHeaders = conf.allow_headers ?? '*';
  return {
    origins: originRule(conf.allow_origins ?? '*'),
    originsByRegex: joinedRegex(conf.allow_origins_by_regex),
    originsByMetadata,
    timingOrigins: conf.timing_allow_origins !== undefined ? originRule(conf.timing_allow_origins) : undefined,
    timingOriginsByRegex: joinedRegex(conf.timing_allow_origins_by_regex),
    allowMethods: allowMethods === '**' ? ALL_METHODS : allowMethods,
    allowHeaders: allowHeaders === '**' ? undefined : allowHeaders,
    exposeHeaders: conf.expose_headers,
    maxAge: String(conf.max_age ?? 5),
    allowCredential: conf.allow_credential === true,
  };
}

function check(raw: unknown, kind: 'route' | 'consumer' | 'metadata'): string | undefined {
  if (kind === 'metadata') return undefined;
  const conf = raw as CorsConf;
  if (conf.allow_credential === true) {
    if (
      conf.allow_origins === '*' ||
      conf.allow_methods === '*' ||
      conf.allow_headers === '*' ||
      conf.expose_headers === '*' ||
      conf.timing_allow_origins === '*'
    ) {
      return "you can not set '*' for other option when 'allow_credential' is true";
    }
  }
  for (const pattern of [...(conf.allow_origins_by_regex ?? []), ...(conf.timing_allow_origins_by_regex ?? [])]) {
    if (pcreToRegExp(pattern, false) === undefined) return 'regex expression invalid';
  }
  return undefined;
}

const cors: PluginModule<CompiledCors> = {
  name: 'cors',
  version: '0.1',
  priority: 4000,
  schema,
  metadataSchema,
  check,
  compile,
  rewrite(_compiled, ctx) {
    // A preflight is answered here; header_filter (which runs on exits too) adds the CORS headers.
    return ctx.method === 'OPTIONS' ? ctx.exit(200) : undefined;
  },
  header_filter(compiled, ctx) {
    const headers = corsHeaders(compiled, ctx);
    if (headers === undefined) return undefined;
    for (const name in headers) {
      if (name === 'Vary') ctx.addResponseHeader(name, headers[name]);
      else ctx.setResponseHeader(name, headers[name]);
    }
    return undefined;
  },
};

export default cors;
