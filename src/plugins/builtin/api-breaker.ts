// api-breaker: a circuit breaker per route, host and path (APISIX's
// api-breaker). Upstream answers with a status in unhealthy.http_statuses are
// counted; every `unhealthy.failures` of them opens the breaker for 2^n
// seconds (n = failures / unhealthy.failures, at most max_breaker_sec), during
// which requests are answered break_response_code at once.
// `healthy.successes` answers in healthy.http_statuses close it again. State
// lives in the shared dictionary `plugin-api-breaker`, shared by all workers.

import type { SharedDict } from '../../native/shdict';
import type { JsonSchema, PluginContext, PluginModule } from '../types';
import { resolveTemplate } from '../lib/limit-window';

export const API_BREAKER_DICT = 'plugin-api-breaker';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    break_response_code: { type: 'integer', minimum: 200, maximum: 599 },
    break_response_body: { type: 'string' },
    break_response_headers: {
      type: 'array',
      items: {
        type: 'object',
        properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string', minLength: 1 } },
        required: ['key', 'value'],
      },
    },
    max_breaker_sec: { type: 'integer', minimum: 3, default: 300 },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: {
          type: 'array',
          minItems: 1,
          items: { type: 'integer', minimum: 500, maximum: 599 },
          uniqueItems: true,
          default: [500],
        },
        failures: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [500], failures: 3 },
    },
    healthy: {
      type: 'object',
      properties: {
        http_statuses: {
          type: 'array',
          minItems: 1,
          items: { type: 'integer', minimum: 200, maximum: 499 },
          uniqueItems: true,
          default: [200],
        },
        successes: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [200], successes: 3 },
    },
  },
  required: ['break_response_code'],
};

interface ApiBreakerConf {
  break_response_code: number;
  break_response_body?: string;
  break_response_headers?: { key: string; value: string }[];
  max_breaker_sec?: number;
  unhealthy?: { http_statuses?: number[]; failures?: number };
  healthy?: { http_statuses?: number[]; successes?: number };
}

export interface CompiledApiBreaker {
  readonly status: number;
  readonly body: string | undefined;
  readonly headers: readonly { key: string; value: string }[];
  readonly maxBreakerSec: number;
  readonly unhealthyStatuses: ReadonlySet<number>;
  readonly failures: number;
  readonly healthyStatuses: ReadonlySet<number>;
  readonly successes: number;
  dict: SharedDict | undefined;
}

function stateKey(ctx: PluginContext): string {
  const host = ctx.header('host') ?? '';
  return `${ctx.routeId}:${host}${ctx.uri}`;
}

function dictOf(compiled: CompiledApiBreaker, ctx: PluginContext): SharedDict {
  compiled.dict ??= ctx.dict(API_BREAKER_DICT);
  return compiled.dict;
}

/** The status the upstream answered; undefined when the request never reached one. */
function upstreamStatus(ctx: PluginContext): number | undefined {
  const value = ctx.var('upstream_status');
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '') {
    // Several attempts are listed "502, 200": the last one answered.
    const last = Number(value.slice(value.lastIndexOf(',') + 1).trim());
    return Number.isInteger(last) ? last : undefined;
  }
  return ctx.status > 0 ? ctx.status : undefined;
}

const apiBreaker: PluginModule<CompiledApiBreaker> = {
  name: 'api-breaker',
  version: '0.1',
  priority: 1005,
  schema,
  compile(raw) {
    const conf = raw as ApiBreakerConf;
    return {
      status: conf.break_response_code,
      body: conf.break_response_body,
      headers: conf.break_response_headers ?? [],
      maxBreakerSec: conf.max_breaker_sec ?? 300,
      unhealthyStatuses: new Set(conf.unhealthy?.http_statuses ?? [500]),
      failures: conf.unhealthy?.failures ?? 3,
      healthyStatuses: new Set(conf.healthy?.http_statuses ?? [200]),
      successes: conf.healthy?.successes ?? 3,
      dict: undefined,
    };
  },
  access(compiled, ctx) {
    const dict = dictOf(compiled, ctx);
    const key = stateKey(ctx);
    const unhealthy = dict.get(`unhealthy-${key}`);
    if (typeof unhealthy !== 'number') return undefined;
    const lastBreak = dict.get(`unhealthy-lasttime-${key}`);
    if (typeof lastBreak !== 'number') return undefined;
    const failureTimes = Math.max(1, Math.ceil(unhealthy / compiled.failures));
    const breakerSec = Math.min(2 ** failureTimes, compiled.maxBreakerSec);
    if (lastBreak + breakerSec < Math.floor(Date.now() / 1000)) return undefined;
    ctx.scratch('api-breaker').broken = true;
    if (compiled.body === undefined) return ctx.exit(compiled.status);
    let headers: Record<string, string> | undefined;
    if (compiled.headers.length > 0) {
      headers = {};
      for (const { key: name, value } of compiled.headers) headers[name] = resolveTemplate(value, ctx).value;
    }
    return ctx.exit(compiled.status, compiled.body, headers);
  },
  log(compiled, ctx) {
    if (ctx.scratch('api-breaker').broken === true) return undefined;
    const status = upstreamStatus(ctx);
    if (status === undefined) return undefined;
    const dict = dictOf(compiled, ctx);
    const key = stateKey(ctx);
    const unhealthyKey = `unhealthy-${key}`;
    const healthyKey = `healthy-${key}`;
    if (compiled.unhealthyStatuses.has(status)) {
      // The counters outlive the longest break, then go.
      const keepMs = compiled.maxBreakerSec * 2000;
      const count = dict.incr(unhealthyKey, 1, 0, keepMs) ?? 1;
      if (count % compiled.failures === 0) {
        dict.set(`unhealthy-lasttime-${key}`, Math.floor(Date.now() / 1000), compiled.maxBreakerSec * 1000);
      }
      dict.delete(healthyKey);
      return undefined;
    }
    if (!compiled.healthyStatuses.has(status)) return undefined;
    if (dict.get(unhealthyKey) === undefined) return undefined;
    const successes = dict.incr(healthyKey, 1, 0) ?? 1;
    if (successes >= compiled.successes) {
      dict.delete(unhealthyKey);
      dict.delete(`unhealthy-lasttime-${key}`);
      dict.delete(healthyKey);
    }
    return undefined;
  },
};

export default apiBreaker;
