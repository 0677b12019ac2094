// response-rewrite: changes the response sent to the client — `status_code`,
// headers (`{add: ["Name: value"], set: {}, remove: []}` or a flat set map,
// values with `$var`s), and the body: a new `body` (optionally base64), or
// regex `filters` applied to the upstream body (`scope` once or global). `vars`
// makes it conditional on the request. Regexes are compiled once.

import { compileExpr, type CompiledExpr } from '../../core/expr';
import type { PluginContext, PluginModule } from '../types';
import { compileTemplate, type Template } from './proxy-rewrite';

const NAME = 'response-rewrite';

export interface ResponseRewriteConf {
  readonly status_code?: number;
  readonly body?: string;
  readonly body_base64?: boolean;
  readonly headers?: Readonly<Record<string, unknown>>;
  readonly vars?: readonly unknown[];
  readonly filters?: readonly { regex: string; replace: string; scope: 'once' | 'global'; options: string }[];
}

interface BodyFilter {
  readonly regex: RegExp;
  readonly replace: Template;
}

export interface CompiledResponseRewrite {
  readonly status: number | undefined;
  readonly body: Buffer | undefined;
  readonly filters: readonly BodyFilter[] | undefined;
  readonly vars: CompiledExpr | undefined;
  readonly addHeaders: readonly (readonly [string, Template])[];
  readonly setHeaders: readonly (readonly [string, Template])[];
  readonly removeHeaders: readonly string[];
}

const MATCHED = 'matched';

/** PCRE options as JS flags: i, m and s carry over; j, o, u, x, d, D, J and a are engine hints. */
export function regexFlags(options: string, global: boolean): string {
  let flags = global ? 'g' : '';
  for (const option of ['i', 'm', 's']) if (options.includes(option)) flags += option;
  return flags;
}

function isOperationsForm(headers: Readonly<Record<string, unknown>>): boolean {
  const isTable = (value: unknown) => typeof value === 'object' && value !== null;
  return isTable(headers.add) || isTable(headers.set) || isTable(headers.remove);
}

const ADD_HEADER = /^([^:\s]+)\s*:\s*([^:]+)$/;
const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };
const headerMap = { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } };

const responseRewrite: PluginModule<CompiledResponseRewrite> = {
  name: NAME,
  version: '0.1',
  priority: 899,
  schema: {
    type: 'object',
    properties: {
      headers: {
        anyOf: [
          headerMap,
          {
            type: 'object',
            properties: {
              add: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+:[^:]+[^/]$' } },
              set: headerMap,
              remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
            },
          },
        ],
      },
      body: { type: 'string' },
      body_base64: { type: 'boolean', default: false },
      status_code: { type: 'integer', minimum: 200, maximum: 598 },
      vars: { type: 'array' },
      filters: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['regex', 'replace'],
          properties: {
            regex: { type: 'string', minLength: 1 },
            scope: { type: 'string', enum: ['once', 'global'], default: 'once' },
            replace: { type: 'string' },
            options: { type: 'string', default: 'jo' },
          },
        },
      },
    },
    dependencies: {
      body: { not: { required: ['filters'] } },
      filters: { not: { required: ['body'] } },
    },
  },

  check(raw) {
    const conf = raw as ResponseRewriteConf;
    if (conf.headers !== undefined && !isOperationsForm(conf.headers)) {
      for (const [field, value] of Object.entries(conf.headers)) {
        if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
        if (field.length === 0) return 'invalid field length in header';
      }
    }
    if (conf.body_base64 === true) {
      const body = conf.body ?? '';
      if (body.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 === 1) {
        return 'invalid base64 content';
      }
    }
    if (conf.vars !== undefined) {
      try {
        compileExpr(conf.vars);
      } catch (error) {
        return `failed to validate the 'vars' expression: ${(error as Error).message}`;
      }
    }
    for (const filter of conf.filters ?? []) {
      try {
        new RegExp(filter.regex, regexFlags(filter.options ?? 'jo', false));
      } catch (error) {
        return `regex "${filter.regex}" validation failed: ${(error as Error).message}`;
      }
    }
    return undefined;
  },

  compile(raw) {
    const conf = raw as ResponseRewriteConf;
    const headers = conf.headers;
    const operations = headers !== undefined && isOperationsForm(headers);
    const addHeaders: [string, Template][] = [];
    for (const line of operations ? ((headers.add as string[] | undefined) ?? []) : []) {
      const match = ADD_HEADER.exec(line);
      if (match !== null) addHeaders.push([match[1], compileTemplate(match[2])]);
    }
    const setMap = operations ? (headers.set as Record<string, unknown> | undefined) : headers;
    return {
      status: conf.status_code,
      body: conf.body === undefined ? undefined : Buffer.from(conf.body, conf.body_base64 === true ? 'base64' : 'utf8'),
      filters: conf.filters?.map((filter) => ({
        regex: new RegExp(filter.regex, regexFlags(filter.options, filter.scope === 'global')),
        replace: compileTemplate(filter.replace),
      })),
      vars: conf.vars === undefined ? undefined : compileExpr(conf.vars),
      addHeaders,
      setHeaders: Object.entries(setMap ?? {}).map(([name, value]) => [name, compileTemplate(String(value))] as const),
      removeHeaders: operations ? ((headers.remove as string[] | undefined) ?? []) : [],
    };
  },

  header_filter(conf, ctx) {
    const matched = conf.vars === undefined || conf.vars((name) => ctx.var(name));
    ctx.scratch(NAME)[MATCHED] = matched;
    if (!matched) return undefined;
    if (conf.status !== undefined) ctx.setStatus(conf.status);
    if (conf.body !== undefined || conf.filters !== undefined) {
      // The body changes: the upstream's length and validators no longer describe it.
      ctx.setResponseHeader('content-length', null);
      ctx.setResponseHeader('etag', null);
      ctx.setResponseHeader('last-modified', null);
    }
    for (const [name, value] of conf.addHeaders) ctx.addResponseHeader(name, value.render(ctx));
    for (const [name, value] of conf.setHeaders) ctx.setResponseHeader(name, value.render(ctx));
    for (const name of conf.removeHeaders) ctx.setResponseHeader(name, null);
    return undefined;
  },

  body_filter(conf, ctx, body) {
    if (ctx.scratch(NAME)[MATCHED] !== true) return undefined;
    if (conf.body !== undefined) return conf.body;
    if (conf.filters === undefined) return undefined;
    let text = body.toString('utf8');
    for (const filter of conf.filters) text = applyFilter(text, filter, ctx);
    return Buffer.from(text, 'utf8');
  },
};

/** ngx.re.sub (scope once) or ngx.re.gsub (scope global): `$0` is the match, `$1`... its groups. */
function applyFilter(text: string, filter: BodyFilter, ctx: PluginContext): string {
  const { regex, replace } = filter;
  if (!regex.global) {
    const match = regex.exec(text);
    if (match === null) return text;
    return text.slice(0, match.index) + replace.render(ctx, match) + text.slice(match.index + match[0].length);
  }
  let out = '';
  let last = 0;
  for (const match of text.matchAll(regex)) {
    out += text.slice(last, match.index) + replace.render(ctx, match);
    last = match.index + match[0].length;
  }
  return out + text.slice(last);
}

export default responseRewrite;
