// limit-count: at most `count` requests per `time_window` seconds per key, in
// fixed windows (APISIX's limit-count). Policies:
// - local: a counter in the shared dictionary `plugin-limit-count`, exact
//   across every worker (atomic incr, TTL = the window);
// - redis / redis-cluster: a counter in Redis (one script call per request).
// Accepted responses carry X-RateLimit-Limit/-Remaining/-Reset
// (show_limit_quota_header; names from the plugin metadata), rejected ones get
// rejected_code with {"error_msg": rejected_msg} when set.

import { createHash } from 'node:crypto';

import type { SharedDict } from '../../native/shdict';
import {
  headerName,
  type HeaderName,
  type JsonSchema,
  type PluginContext,
  type PluginEnv,
  type PluginModule,
  type PhaseResult,
} from '../types';
import {
  dictAtCompile,
  type KeyType,
  resolveLimitKey,
  resolveTemplate,
  takeFromLocalWindow,
  takeFromRedisWindow,
  type WindowResult,
} from '../lib/limit-window';
import { acquireRedis, type RedisConf, type RedisHandle, redisClusterSchema, redisSchema } from '../lib/redis';

export const LIMIT_COUNT_DICT = 'plugin-limit-count';

const countSchema = { oneOf: [{ type: 'integer', exclusiveMinimum: 0 }, { type: 'string' }] };

const schema: JsonSchema = {
  type: 'object',
  properties: {
    count: countSchema,
    time_window: countSchema,
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          count: countSchema,
          time_window: countSchema,
          key: { type: 'string' },
          header_prefix: { type: 'string' },
        },
        required: ['count', 'time_window', 'key'],
      },
    },
    group: { type: 'string' },
    key: { type: 'string', default: 'remote_addr' },
    key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
    allow_degradation: { type: 'boolean', default: false },
    show_limit_quota_header: { type: 'boolean', default: true },
  },
  oneOf: [{ required: ['count', 'time_window'] }, { required: ['rules'] }],
  if: { properties: { policy: { enum: ['redis'] } }, required: ['policy'] },
  then: redisSchema,
  else: {
    if: { properties: { policy: { enum: ['redis-cluster'] } }, required: ['policy'] },
    then: redisClusterSchema,
  },
};

const metadataSchema: JsonSchema = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: 'X-RateLimit-Limit' },
    remaining_header: { type: 'string', default: 'X-RateLimit-Remaining' },
    reset_header: { type: 'string', default: 'X-RateLimit-Reset' },
  },
};

interface RuleConf {
  count: number | string;
  time_window: number | string;
  key: string;
  header_prefix?: string;
}

interface LimitCountConf extends RedisConf {
  count?: number | string;
  time_window?: number | string;
  rules?: RuleConf[];
  group?: string;
  key?: string;
  key_type?: KeyType;
  rejected_code?: number;
  rejected_msg?: string;
  policy?: 'local' | 'redis' | 'redis-cluster';
  allow_degradation?: boolean;
  show_limit_quota_header?: boolean;
}

interface HeaderNames {
  readonly limit: HeaderName;
  readonly remaining: HeaderName;
  readonly reset: HeaderName;
}

interface CompiledRule {
  /** A number, or a `$var` template resolved per request. */
  readonly count: number | string;
  readonly timeWindow: number | string;
  readonly key: string;
  readonly keyType: KeyType;
  /** `key` is the var remote_addr, the default: read straight from the context. */
  readonly byRemoteAddr: boolean;
  /** The last counter key built and what it was built from: one client on a route gets the same key each time. */
  readonly lastCounterKey: { key: string | undefined; routeId: string; counterKey: string };
  readonly headers: HeaderNames;
  /** Appended to the counter key so rules sharing a key count apart. */
  readonly suffix: string;
}

export interface CompiledLimitCount {
  readonly policy: 'local' | 'redis' | 'redis-cluster';
  readonly rules: readonly CompiledRule[];
  /** From `rules` (skipped when their key resolves to nothing) rather than count/time_window. */
  readonly fromRules: boolean;
  readonly group: string | undefined;
  /** Identifies this configuration in counter keys, so a changed configuration starts new windows. */
  readonly confDigest: string;
  readonly rejectedCode: number;
  readonly rejectedBody: { error_msg: string } | undefined;
  readonly allowDegradation: boolean;
  readonly showHeaders: boolean;
  dict: SharedDict | undefined;
  readonly redis: RedisHandle | undefined;
}

function headerNames(metadata: Readonly<Record<string, unknown>> | undefined, prefix?: string): HeaderNames {
  if (prefix !== undefined) {
    return {
      limit: headerName(`X-${prefix}-RateLimit-Limit`),
      remaining: headerName(`X-${prefix}-RateLimit-Remaining`),
      reset: headerName(`X-${prefix}-RateLimit-Reset`),
    };
  }
  const named = (name: string, fallback: string): HeaderName =>
    headerName(typeof metadata?.[name] === 'string' ? (metadata[name] as string) : fallback);
  return {
    limit: named('limit_header', 'X-RateLimit-Limit'),
    remaining: named('remaining_header', 'X-RateLimit-Remaining'),
    reset: named('reset_header', 'X-RateLimit-Reset'),
  };
}

/** count / time_window: the number, or the `$var` it names resolved to a number; undefined when it does not resolve. */
function resolveNumber(value: number | string, ctx: PluginContext): number | undefined {
  if (typeof value === 'number') return value;
  const resolved = Number(resolveTemplate(value, ctx).value);
  return Number.isFinite(resolved) && resolved > 0 ? resolved : undefined;
}

function quotaHeaders(rule: CompiledRule, limit: number, result: WindowResult): Record<string, string> {
  return {
    [rule.headers.limit.name]: String(limit),
    [rule.headers.remaining.name]: String(result.remaining),
    [rule.headers.reset.name]: String(result.reset),
  };
}

function counterKey(compiled: CompiledLimitCount, ctx: PluginContext, key: string, rule: CompiledRule): string {
  const routeId = ctx.routeId;
  const last = rule.lastCounterKey;
  if (key === last.key && routeId === last.routeId) return last.counterKey;
  const base = compiled.group !== undefined ? `${compiled.group}:${key}` : `${routeId}:${compiled.confDigest}:${key}`;
  last.key = key;
  last.routeId = routeId;
  last.counterKey = rule.suffix === '' ? base : `${base}:${rule.suffix}`;
  return last.counterKey;
}

function failure(compiled: CompiledLimitCount, ctx: PluginContext, error: unknown): PhaseResult {
  ctx.log.error('limit-count: failed to limit count', { error: String(error) });
  if (compiled.allowDegradation) return undefined;
  return ctx.exit(500, { error_msg: 'failed to limit count' });
}

/** Applies one rule's result: undefined to go on, an exit when rejected. */
function verdict(
  compiled: CompiledLimitCount,
  ctx: PluginContext,
  rule: CompiledRule,
  limit: number,
  result: WindowResult,
): PhaseResult {
  if (!result.allowed) {
    const headers = compiled.showHeaders ? quotaHeaders(rule, limit, result) : undefined;
    return ctx.exit(compiled.rejectedCode, compiled.rejectedBody, headers);
  }
  if (compiled.showHeaders) {
    ctx.setResponseHeader(rule.headers.limit, limit);
    ctx.setResponseHeader(rule.headers.remaining, result.remaining);
    ctx.setResponseHeader(rule.headers.reset, result.reset);
  }
  return undefined;
}

/** The rule's counter key for this request; undefined when its `rules` key resolves to nothing. */
function ruleKey(compiled: CompiledLimitCount, ctx: PluginContext, rule: CompiledRule): string | undefined {
  let key: string;
  if (compiled.fromRules) {
    const { value, resolved } = resolveTemplate(rule.key, ctx);
    if (resolved === 0 && rule.key.includes('$')) return undefined;
    key = value;
  } else {
    key = rule.byRemoteAddr ? ctx.remoteAddr : resolveLimitKey(ctx, rule.key, rule.keyType);
  }
  return counterKey(compiled, ctx, key, rule);
}

function localAccess(compiled: CompiledLimitCount, ctx: PluginContext): PhaseResult {
  // The common case, one rule with a numeric count and window, allocates no intermediate objects.
  let dict = compiled.dict;
  if (dict === undefined) {
    try {
      dict = compiled.dict = ctx.dict(LIMIT_COUNT_DICT);
    } catch (error) {
      return failure(compiled, ctx, error);
    }
  }
  let applied = 0;
  for (let i = 0; i < compiled.rules.length; i++) {
    const rule = compiled.rules[i];
    const limit = resolveNumber(rule.count, ctx);
    const window = resolveNumber(rule.timeWindow, ctx);
    if (limit === undefined || window === undefined) continue;
    const key = ruleKey(compiled, ctx, rule);
    if (key === undefined) continue;
    applied++;
    let result: WindowResult;
    try {
      result = takeFromLocalWindow(dict, key, limit, window);
    } catch (error) {
      return failure(compiled, ctx, error);
    }
    const exit = verdict(compiled, ctx, rule, limit, result);
    if (exit !== undefined) return exit;
  }
  if (applied === 0) return failure(compiled, ctx, 'failed to get rate limit rules');
  return undefined;
}

async function redisAccess(compiled: CompiledLimitCount, ctx: PluginContext): Promise<PhaseResult> {
  const client = compiled.redis?.client;
  let applied = 0;
  for (const rule of compiled.rules) {
    const limit = resolveNumber(rule.count, ctx);
    const window = resolveNumber(rule.timeWindow, ctx);
    if (limit === undefined || window === undefined || client === undefined) continue;
    const key = ruleKey(compiled, ctx, rule);
    if (key === undefined) continue;
    applied++;
    let result: WindowResult;
    try {
      result = await takeFromRedisWindow(client, `plugin-limit-count${key}`, limit, window);
    } catch (error) {
      return failure(compiled, ctx, error);
    }
    const exit = verdict(compiled, ctx, rule, limit, result);
    if (exit !== undefined) return exit;
  }
  if (applied === 0) return failure(compiled, ctx, 'failed to get rate limit rules');
  return undefined;
}

function compile(raw: unknown, env: PluginEnv): CompiledLimitCount {
  const conf = raw as LimitCountConf;
  const policy = conf.policy ?? 'local';
  const keyType = conf.key_type ?? 'var';
  const defaultHeaders = headerNames(env.metadata);
  const rules: CompiledRule[] =
    conf.rules !== undefined
      ? conf.rules.map((rule) => ({
          count: rule.count,
          timeWindow: rule.time_window,
          key: rule.key,
          keyType: 'constant',
          byRemoteAddr: false,
          lastCounterKey: { key: undefined, routeId: '', counterKey: '' },
          headers: rule.header_prefix !== undefined ? headerNames(undefined, rule.header_prefix) : defaultHeaders,
          suffix: rule.header_prefix ?? '',
        }))
      : [
          {
            count: conf.count ?? 1,
            timeWindow: conf.time_window ?? 1,
            key: conf.key ?? 'remote_addr',
            keyType,
            byRemoteAddr: keyType === 'var' && (conf.key ?? 'remote_addr') === 'remote_addr',
            lastCounterKey: { key: undefined, routeId: '', counterKey: '' },
            headers: defaultHeaders,
            suffix: '',
          },
        ];
  let dict: SharedDict | undefined;
  if (policy === 'local') {
    dict = dictAtCompile(env, LIMIT_COUNT_DICT);
  }
  return {
    policy,
    rules,
    fromRules: conf.rules !== undefined,
    group: conf.group,
    confDigest: createHash('sha1').update(JSON.stringify(conf)).digest('hex').slice(0, 12),
    rejectedCode: conf.rejected_code ?? 503,
    rejectedBody: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined,
    allowDegradation: conf.allow_degradation === true,
    showHeaders: conf.show_limit_quota_header !== false,
    dict,
    redis: policy === 'local' ? undefined : acquireRedis(policy, conf),
  };
}

function check(raw: unknown, kind: 'route' | 'consumer' | 'metadata'): string | undefined {
  if (kind === 'metadata') return undefined;
  const conf = raw as LimitCountConf;
  const seen = new Set<string>();
  for (const rule of conf.rules ?? []) {
    if (seen.has(rule.key)) return `duplicate key '${rule.key}' in rules`;
    seen.add(rule.key);
  }
  return undefined;
}

const limitCount: PluginModule<CompiledLimitCount> = {
  name: 'limit-count',
  version: '0.5',
  priority: 1002,
  schema,
  metadataSchema,
  check,
  compile,
  release(compiled) {
    compiled.redis?.release();
  },
  access(compiled, ctx) {
    return compiled.policy === 'local' ? localAccess(compiled, ctx) : redisAccess(compiled, ctx);
  },
};

export default limitCount;
