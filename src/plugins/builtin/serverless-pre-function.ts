// serverless-pre-function (and, through serverlessPlugin(), serverless-post-function):
// run JavaScript functions from the configuration in one phase of the request.
//
//   "serverless-pre-function": {
//     "phase": "rewrite",
//     "functions": ["return (conf, ctx) => { ctx.setHeader('x-from', 'serverless'); }"]
//   }
//
// Each entry of `functions` is the body of a JavaScript function that returns
// the function to run — APISIX's `return function(conf, ctx) ... end` in
// JavaScript. The returned function gets (conf, ctx) — plus the response body
// in `body_filter`, where it may return a new body — and may return an exit
// (`return ctx.exit(403, {message: 'no'})`) or a promise of one. Functions run
// in order; the first exit ends the request. Sources are compiled once per
// configuration with `new Function`.
//
// This runs code sent to the Admin API with the gateway's privileges (it is
// not a sandbox), so both plugins are off unless config.yaml sets
// `serverless.enabled: true`: the plugin loader leaves them out otherwise
// (src/plugins/loader.ts SERVERLESS_PLUGINS), and the Admin API then refuses
// their configurations as `unknown plugin [serverless-pre-function]`.

import type { Phase, PhaseResult, PluginContext, PluginModule } from '../types';

const PHASES: readonly Phase[] = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'];

export interface ServerlessConf {
  readonly phase: Phase;
  readonly functions: readonly string[];
}

type ServerlessFunction = (
  conf: ServerlessConf,
  ctx: PluginContext,
  body?: Buffer,
) => PhaseResult | Buffer | string | Promise<PhaseResult | Buffer | string>;

export interface CompiledServerless {
  readonly conf: ServerlessConf;
  readonly phase: Phase;
  readonly functions: readonly ServerlessFunction[];
}

/** Compiles one source; a string is the error APISIX words for it. */
function loadFunction(source: string): ServerlessFunction | string {
  let outer: () => unknown;
  try {
    outer = new Function(source) as () => unknown;
  } catch (error) {
    return `failed to loadstring: ${(error as Error).message}`;
  }
  let inner: unknown;
  try {
    inner = outer();
  } catch (error) {
    return `failed to run the function source: ${(error as Error).message}`;
  }
  if (typeof inner !== 'function') return `only accept JavaScript function, the input code type is ${typeof inner}`;
  return inner as ServerlessFunction;
}

function isExit(value: unknown): value is PhaseResult {
  return typeof value === 'object' && value !== null && typeof (value as { status?: unknown }).status === 'number';
}

/** Runs the functions in order, waiting on promises; stops at the first exit. */
function runPhase(compiled: CompiledServerless, ctx: PluginContext, start = 0): PhaseResult | Promise<PhaseResult> {
  const functions = compiled.functions;
  for (let i = start; i < functions.length; i++) {
    const result = functions[i](compiled.conf, ctx);
    if (result instanceof Promise) {
      return result.then((settled) => (isExit(settled) ? settled : runPhase(compiled, ctx, i + 1)));
    }
    if (isExit(result)) return result;
  }
  return undefined;
}

async function runBodyFilter(compiled: CompiledServerless, ctx: PluginContext, body: Buffer): Promise<Buffer> {
  let current = body;
  for (const run of compiled.functions) {
    const result = await run(compiled.conf, ctx, current);
    if (typeof result === 'string') current = Buffer.from(result);
    else if (Buffer.isBuffer(result)) current = result;
  }
  return current;
}

/** The module for one of the two plugins: they differ by name and priority only. */
export function serverlessPlugin(name: string, priority: number): PluginModule<CompiledServerless> {
  const only =
    (phase: Phase) =>
    (compiled: CompiledServerless, ctx: PluginContext): PhaseResult | Promise<PhaseResult> =>
      compiled.phase === phase ? runPhase(compiled, ctx) : undefined;
  return {
    name,
    version: '0.1',
    priority,
    schema: {
      type: 'object',
      properties: {
        phase: { type: 'string', enum: PHASES, default: 'access' },
        functions: { type: 'array', minItems: 1, items: { type: 'string' } },
      },
      required: ['functions'],
    },

    check(raw) {
      for (const source of (raw as ServerlessConf).functions) {
        const loaded = loadFunction(source);
        if (typeof loaded === 'string') return loaded;
      }
      return undefined;
    },

    compile(raw) {
      const conf = raw as ServerlessConf;
      const functions = conf.functions.map((source) => {
        const loaded = loadFunction(source);
        if (typeof loaded === 'string') throw new Error(loaded);
        return loaded;
      });
      return { conf, phase: conf.phase, functions };
    },

    rewrite: only('rewrite'),
    access: only('access'),
    before_proxy: only('before_proxy'),
    header_filter: only('header_filter'),
    log: only('log'),
    body_filter(compiled, ctx, body) {
      if (compiled.phase !== 'body_filter') return undefined;
      return runBodyFilter(compiled, ctx, body);
    },
  };
}

export default serverlessPlugin('serverless-pre-function', 10000);
