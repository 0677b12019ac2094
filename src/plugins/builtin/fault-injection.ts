// fault-injection: delay requests (`delay.duration` seconds) and/or answer
// them at once (`abort.http_status` with `abort.body` and `abort.headers`,
// `$var`s resolved), each for a `percentage` of requests and only when one of
// its `vars` expressions matches (APISIX's fault-injection, rewrite phase).

import { compileExpr, type CompiledExpr, validateExpr } from '../../core/expr';
import type { JsonSchema, PluginContext, PluginModule } from '../types';
import { resolveTemplate } from '../lib/limit-window';

const percentage = { type: 'integer', minimum: 0, maximum: 100 };
const vars = { type: 'array', maxItems: 20, items: { type: 'array' } };

const schema: JsonSchema = {
  type: 'object',
  properties: {
    abort: {
      type: 'object',
      properties: {
        http_status: { type: 'integer', minimum: 200 },
        body: { type: 'string', minLength: 0 },
        headers: {
          type: 'object',
          minProperties: 1,
          patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
        },
        percentage,
        vars,
      },
      required: ['http_status'],
    },
    delay: {
      type: 'object',
      properties: { duration: { type: 'number', minimum: 0 }, percentage, vars },
      required: ['duration'],
    },
  },
  minProperties: 1,
};

interface FaultConf {
  abort?: {
    http_status: number;
    body?: string;
    headers?: Record<string, string | number>;
    percentage?: number;
    vars?: unknown[];
  };
  delay?: { duration: number; percentage?: number; vars?: unknown[] };
}

interface Fault {
  readonly percentage: number | undefined;
  /** OR of the `vars` expressions; undefined = always. */
  readonly vars: readonly CompiledExpr[] | undefined;
}

export interface CompiledFaultInjection {
  readonly abort:
    | (Fault & { readonly status: number; readonly body: string | undefined; readonly headers: [string, string][] })
    | undefined;
  readonly delay: (Fault & { readonly ms: number }) | undefined;
}

function hits(fault: Fault, ctx: PluginContext): boolean {
  if (fault.percentage !== undefined && Math.floor(Math.random() * 100) + 1 > fault.percentage) return false;
  if (fault.vars === undefined) return true;
  const lookup = (name: string) => ctx.var(name);
  for (const expr of fault.vars) if (expr(lookup)) return true;
  return false;
}

function abortExit(compiled: CompiledFaultInjection, ctx: PluginContext) {
  const abort = compiled.abort;
  if (abort === undefined || !hits(abort, ctx)) return undefined;
  let headers: Record<string, string> | undefined;
  if (abort.headers.length > 0) {
    headers = {};
    for (const [name, value] of abort.headers) headers[name] = resolveTemplate(value, ctx).value;
  }
  const body = abort.body === undefined ? undefined : resolveTemplate(abort.body, ctx).value;
  return ctx.exit(abort.status, body, headers);
}

const faultInjection: PluginModule<CompiledFaultInjection> = {
  name: 'fault-injection',
  version: '0.1',
  priority: 11000,
  schema,
  check(raw) {
    const conf = raw as FaultConf;
    for (const list of [conf.abort?.vars, conf.delay?.vars]) {
      for (const expr of list ?? []) {
        const error = validateExpr(expr);
        if (error !== undefined) return `failed to create vars expression: ${error}`;
      }
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as FaultConf;
    return {
      abort:
        conf.abort === undefined
          ? undefined
          : {
              status: conf.abort.http_status,
              body: conf.abort.body,
              headers: Object.entries(conf.abort.headers ?? {}).map(([name, value]) => [name, String(value)]),
              percentage: conf.abort.percentage,
              vars: conf.abort.vars?.map((expr) => compileExpr(expr)),
            },
      delay:
        conf.delay === undefined
          ? undefined
          : {
              ms: conf.delay.duration * 1000,
              percentage: conf.delay.percentage,
              vars: conf.delay.vars?.map((expr) => compileExpr(expr)),
            },
    };
  },
  rewrite(compiled, ctx) {
    if (compiled.delay !== undefined && compiled.delay.ms > 0 && hits(compiled.delay, ctx)) {
      return new Promise((resolve) => setTimeout(resolve, compiled.delay?.ms)).then(() => abortExit(compiled, ctx));
    }
    return abortExit(compiled, ctx);
  },
};

export default faultInjection;
