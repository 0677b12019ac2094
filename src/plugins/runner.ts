// Running a request's plugin chain, phase by phase. Entries run in the
// chain's order; a phase function that returns an exit ends the request.
// Synchronous phases stay synchronous: the runner touches `.then` only when a
// phase function returned a promise, so a chain of sync plugins allocates no
// promise per request.

import { logger } from '../core/log';
import { returnOut } from '../dataplane/out-pool';
import type { RequestContext } from './context';
import type { ChainEntry, PluginChain, PluginExit, PhaseResult } from './types';

const log = logger('plugins');

/** Request phases in run order; ConsumerRewrite is the rewrite of plugins merged in from a consumer. */
const enum Stage {
  Rewrite = 0,
  ConsumerRewrite = 1,
  Access = 2,
  BeforeProxy = 3,
  Count = 4,
}

function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** An entry's exit with `_meta.error_response` in place of its body. */
function exitOf(entry: ChainEntry, exit: PluginExit): PluginExit {
  if (entry.errorResponse === undefined) return exit;
  return { status: exit.status, body: entry.errorResponse, headers: exit.headers };
}

/**
 * After rewrite: merge the attached consumer's plugins into the chain (once)
 * and return the entries whose rewrite still has to run: the ones the route's
 * chain did not have, auth plugins excepted (they ran already).
 */
const NO_ENTRIES: readonly ChainEntry[] = [];

// A merged chain comes from one route chain (mergeConsumer is memoized per route
// chain and consumer), so its list of rewrites still to run is the same on every
// request: worked out once, not filtered into a new array per request.
const pendingRewrites = new WeakMap<PluginChain, readonly ChainEntry[]>();

function consumerRewriteEntries(ctx: RequestContext): readonly ChainEntry[] {
  const consumer = ctx.consumer;
  if (consumer === undefined || ctx.chain !== ctx.routeChain) return NO_ENTRIES;
  const merged = ctx.chain.mergeConsumer(consumer);
  ctx.chain = merged;
  let entries = pendingRewrites.get(merged);
  if (entries === undefined) {
    const before = ctx.routeChain.rewrite;
    entries = merged.rewrite.filter((entry) => entry.plugin.type !== 'auth' && !before.includes(entry));
    pendingRewrites.set(merged, entries);
  }
  return entries;
}

function stageEntries(ctx: RequestContext, stage: Stage): readonly ChainEntry[] {
  switch (stage) {
    case Stage.Rewrite:
      return ctx.chain.rewrite;
    case Stage.ConsumerRewrite:
      return consumerRewriteEntries(ctx);
    case Stage.Access:
      return ctx.chain.access;
    default:
      return ctx.chain.before_proxy;
  }
}

function callPhase(ctx: RequestContext, stage: Stage, entry: ChainEntry): PhaseResult | Promise<PhaseResult> {
  const plugin = entry.plugin;
  ctx.current = entry;
  if (stage === Stage.Rewrite || stage === Stage.ConsumerRewrite) return plugin.rewrite!(entry.conf, ctx);
  if (stage === Stage.Access) return plugin.access!(entry.conf, ctx);
  return plugin.before_proxy!(entry.conf, ctx);
}

function resume(
  ctx: RequestContext,
  stage: Stage,
  index: number,
  entries: readonly ChainEntry[] | null,
): PluginExit | undefined | Promise<PluginExit | undefined> {
  for (; stage < Stage.Count; stage++, index = 0, entries = null) {
    const list = entries ?? stageEntries(ctx, stage);
    for (; index < list.length; index++) {
      const entry = list[index];
      if (entry.filter !== null && !entry.filter(ctx)) continue;
      const result = callPhase(ctx, stage, entry);
      if (result === undefined) continue;
      if (isPromise<PhaseResult>(result)) {
        const next = index + 1;
        const from = stage;
        return result.then((exit) =>
          exit !== undefined && exit !== null ? exitOf(entry, exit) : resume(ctx, from, next, list),
        );
      }
      return exitOf(entry, result);
    }
  }
  ctx.current = null;
  return undefined;
}

/**
 * rewrite, the consumer's rewrite, access and before_proxy. Returns the exit
 * that ends the request, undefined to proxy it, or a promise of either when a
 * phase function was async. Throws (or rejects) with a plugin's error.
 */
export function runRequestPhases(ctx: RequestContext): PluginExit | undefined | Promise<PluginExit | undefined> {
  return resume(ctx, Stage.Rewrite, 0, null);
}

/** before_proxy alone, for a retry on another node (APISIX runs it in the balancer phase of every try). */
export function runBeforeProxy(ctx: RequestContext): PluginExit | undefined | Promise<PluginExit | undefined> {
  return resume(ctx, Stage.BeforeProxy, 0, null);
}

function resumeHeaderFilters(ctx: RequestContext, index: number): void | Promise<void> {
  const entries = ctx.chain.header_filter;
  for (; index < entries.length; index++) {
    const entry = entries[index];
    if (entry.filter !== null && !entry.filter(ctx)) continue;
    ctx.current = entry;
    const result = entry.plugin.header_filter!(entry.conf, ctx);
    if (isPromise(result)) {
      const next = index + 1;
      return result.then(() => resumeHeaderFilters(ctx, next));
    }
  }
  ctx.current = null;
}

/** header_filter over ctx.responseHeaders (an exit returned here is ignored: the response is under way). */
export function runHeaderFilters(ctx: RequestContext): void | Promise<void> {
  return resumeHeaderFilters(ctx, 0);
}

function resumeBodyFilters(ctx: RequestContext, index: number, body: Buffer): Buffer | Promise<Buffer> {
  const entries = ctx.chain.body_filter;
  for (; index < entries.length; index++) {
    const entry = entries[index];
    if (entry.filter !== null && !entry.filter(ctx)) continue;
    ctx.current = entry;
    const result = entry.plugin.body_filter!(entry.conf, ctx, body);
    if (isPromise<Buffer | undefined>(result)) {
      const next = index + 1;
      const current = body;
      return result.then((filtered) => resumeBodyFilters(ctx, next, filtered ?? current));
    }
    if (result !== undefined) body = result;
  }
  ctx.current = null;
  return body;
}

/** body_filter over the whole response body; each filter gets the previous one's output. */
export function runBodyFilters(ctx: RequestContext, body: Buffer): Buffer | Promise<Buffer> {
  return resumeBodyFilters(ctx, 0, body);
}

function logFailure(ctx: RequestContext, entry: ChainEntry, err: unknown): void {
  log.error('log phase failed', {
    plugin: entry.plugin.name,
    route: ctx.routeId,
    message: err instanceof Error ? err.message : String(err),
  });
}

function runLogPhase(ctx: RequestContext): void {
  for (const entry of ctx.chain.log) {
    try {
      if (entry.filter !== null && !entry.filter(ctx)) continue;
      ctx.current = entry;
      const result = entry.plugin.log!(entry.conf, ctx);
      if (isPromise(result)) result.then(undefined, (err: unknown) => logFailure(ctx, entry, err));
    } catch (err) {
      logFailure(ctx, entry, err);
    }
  }
  ctx.current = null;
  // The request's head is read in the log phase itself, not after it (as ngx.var in APISIX).
  if (ctx.heldOut !== null) {
    returnOut(ctx.heldOut);
    ctx.heldOut = null;
  }
}

// Requests whose log phase is due: one setImmediate runs every log phase queued
// in an event-loop turn, instead of one Immediate per request.
let pendingLogs: RequestContext[] = [];

function runPendingLogPhases(): void {
  const due = pendingLogs;
  pendingLogs = [];
  for (let i = 0; i < due.length; i++) runLogPhase(due[i]);
}

/** The log phase, once per request, after the response is complete and off its path. */
export function scheduleLogPhase(ctx: RequestContext): void {
  if (ctx.logged) return;
  ctx.logged = true;
  if (ctx.chain.log.length === 0) return;
  if (pendingLogs.push(ctx) === 1) setImmediate(runPendingLogPhases);
}

/** An exit's body as bytes: objects as JSON plus "\n" (APISIX's core.response.exit). */
export function exitBody(exit: PluginExit): Buffer | undefined {
  const body = exit.body;
  if (body === undefined) return undefined;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  return Buffer.from(JSON.stringify(body) + '\n');
}
