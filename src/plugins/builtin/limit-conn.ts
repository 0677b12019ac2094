// limit-conn: at most `conn` concurrent requests per key (APISIX's
// limit-conn). Up to `burst` more are let in after a delay of
// default_conn_delay seconds per multiple of `conn` already in; beyond that
// they get rejected_code with {"error_msg": rejected_msg} when set. The count
// lives in the shared dictionary `plugin-limit-conn` (every worker counts into
// it) and a request is counted out in the log phase.

import type { SharedDict } from '../../native/shdict';
import type { JsonSchema, PluginContext, PluginModule, PhaseResult } from '../types';
import {
  concurrencyIncoming,
  concurrencyLeaving,
  dictAtCompile,
  type KeyType,
  resolveLimitKey,
} from '../lib/limit-window';
import { redisClusterSchema, redisSchema } from '../lib/redis';

export const LIMIT_CONN_DICT = 'plugin-limit-conn';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    conn: { type: 'integer', exclusiveMinimum: 0 },
    burst: { type: 'integer', minimum: 0 },
    default_conn_delay: { type: 'number', exclusiveMinimum: 0 },
    only_use_default_delay: { type: 'boolean', default: false },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['conn', 'burst', 'default_conn_delay', 'key'],
  if: { properties: { policy: { enum: ['redis'] } }, required: ['policy'] },
  then: redisSchema,
  else: { if: { properties: { policy: { enum: ['redis-cluster'] } }, required: ['policy'] }, then: redisClusterSchema },
};

interface LimitConnConf {
  conn: number;
  burst: number;
  default_conn_delay: number;
  key: string;
  key_type?: KeyType;
  policy?: string;
  rejected_code?: number;
  rejected_msg?: string;
  allow_degradation?: boolean;
}

export interface CompiledLimitConn {
  readonly conn: number;
  readonly burst: number;
  readonly unitDelay: number;
  readonly key: string;
  readonly keyType: KeyType;
  readonly rejectedCode: number;
  readonly rejectedBody: { error_msg: string } | undefined;
  readonly allowDegradation: boolean;
  dict: SharedDict | undefined;
}

function failure(compiled: CompiledLimitConn, ctx: PluginContext, error: unknown): PhaseResult {
  ctx.log.error('limit-conn: failed to limit conn', { error: String(error) });
  return compiled.allowDegradation ? undefined : ctx.exit(500, { error_msg: 'failed to limit conn' });
}

const limitConn: PluginModule<CompiledLimitConn> = {
  name: 'limit-conn',
  version: '0.1',
  priority: 1003,
  schema,
  check(raw) {
    const conf = raw as LimitConnConf;
    if (conf.policy !== undefined && conf.policy !== 'local') return `policy ${conf.policy} is not supported yet`;
    return undefined;
  },
  compile(raw, env) {
    const conf = raw as LimitConnConf;
    const dict = dictAtCompile(env, LIMIT_CONN_DICT);
    return {
      conn: conf.conn,
      burst: conf.burst,
      unitDelay: conf.default_conn_delay,
      key: conf.key,
      keyType: conf.key_type ?? 'var',
      rejectedCode: conf.rejected_code ?? 503,
      rejectedBody: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined,
      allowDegradation: conf.allow_degradation === true,
      dict,
    };
  },
  access(compiled, ctx) {
    let delaySeconds: number;
    let key: string;
    try {
      compiled.dict ??= ctx.dict(LIMIT_CONN_DICT);
      key = `${ctx.routeId}:${resolveLimitKey(ctx, compiled.key, compiled.keyType)}`;
      delaySeconds = concurrencyIncoming(compiled.dict, key, compiled.conn, compiled.burst, compiled.unitDelay);
    } catch (error) {
      return failure(compiled, ctx, error);
    }
    if (delaySeconds < 0) return ctx.exit(compiled.rejectedCode, compiled.rejectedBody);
    // Counted in: the log phase counts it out.
    ctx.scratch('limit-conn').key = key;
    if (delaySeconds >= 0.001)
      return new Promise((resolve) => setTimeout(resolve, delaySeconds * 1000)).then(() => undefined);
    return undefined;
  },
  log(compiled, ctx) {
    const key = ctx.scratch('limit-conn').key;
    if (typeof key !== 'string' || compiled.dict === undefined) return undefined;
    concurrencyLeaving(compiled.dict, key);
    return undefined;
  },
};

export default limitConn;
