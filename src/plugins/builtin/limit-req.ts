// limit-req: at most `rate` requests per second per key with a leaky bucket
// (nginx's limit_req, APISIX's limit-req). Requests over the rate but within
// `burst` are delayed to the rate (answered at once with `nodelay`); beyond
// that they get rejected_code with {"error_msg": rejected_msg} when set. The
// bucket lives in the shared dictionary `plugin-limit-req`, so every worker
// counts into the same one.

import type { SharedDict } from '../../native/shdict';
import type { JsonSchema, PluginContext, PluginModule, PhaseResult } from '../types';
import { dictAtCompile, type KeyType, leakyBucketIncoming, resolveLimitKey } from '../lib/limit-window';
import { redisClusterSchema, redisSchema } from '../lib/redis';

export const LIMIT_REQ_DICT = 'plugin-limit-req';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    rate: { type: 'number', exclusiveMinimum: 0 },
    burst: { type: 'number', minimum: 0 },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    nodelay: { type: 'boolean', default: false },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['rate', 'burst', 'key'],
  if: { properties: { policy: { enum: ['redis'] } }, required: ['policy'] },
  then: redisSchema,
  else: { if: { properties: { policy: { enum: ['redis-cluster'] } }, required: ['policy'] }, then: redisClusterSchema },
};

interface LimitReqConf {
  rate: number;
  burst: number;
  key: string;
  key_type?: KeyType;
  policy?: string;
  rejected_code?: number;
  rejected_msg?: string;
  nodelay?: boolean;
  allow_degradation?: boolean;
}

export interface CompiledLimitReq {
  readonly rate: number;
  readonly burst: number;
  readonly key: string;
  readonly keyType: KeyType;
  readonly rejectedCode: number;
  readonly rejectedBody: { error_msg: string } | undefined;
  readonly nodelay: boolean;
  readonly allowDegradation: boolean;
  dict: SharedDict | undefined;
}

function failure(compiled: CompiledLimitReq, ctx: PluginContext, error: unknown): PhaseResult {
  ctx.log.error('limit-req: failed to limit req', { error: String(error) });
  return compiled.allowDegradation ? undefined : ctx.exit(500, { error_msg: 'failed to limit req' });
}

const limitReq: PluginModule<CompiledLimitReq> = {
  name: 'limit-req',
  version: '0.1',
  priority: 1001,
  schema,
  check(raw) {
    const conf = raw as LimitReqConf;
    if (conf.policy !== undefined && conf.policy !== 'local') return `policy ${conf.policy} is not supported yet`;
    return undefined;
  },
  compile(raw, env) {
    const conf = raw as LimitReqConf;
    const dict = dictAtCompile(env, LIMIT_REQ_DICT);
    return {
      rate: conf.rate,
      burst: conf.burst,
      key: conf.key,
      keyType: conf.key_type ?? 'var',
      rejectedCode: conf.rejected_code ?? 503,
      rejectedBody: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined,
      nodelay: conf.nodelay === true,
      allowDegradation: conf.allow_degradation === true,
      dict,
    };
  },
  access(compiled, ctx) {
    let delaySeconds: number;
    try {
      compiled.dict ??= ctx.dict(LIMIT_REQ_DICT);
      const key = `${ctx.routeId}:${resolveLimitKey(ctx, compiled.key, compiled.keyType)}`;
      delaySeconds = leakyBucketIncoming(compiled.dict, key, compiled.rate, compiled.burst);
    } catch (error) {
      return failure(compiled, ctx, error);
    }
    if (delaySeconds < 0) return ctx.exit(compiled.rejectedCode, compiled.rejectedBody);
    if (delaySeconds >= 0.001 && !compiled.nodelay) {
      return new Promise((resolve) => setTimeout(resolve, delaySeconds * 1000)).then(() => undefined);
    }
    return undefined;
  },
};

export default limitReq;
