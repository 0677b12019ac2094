// Counting primitives for the limit-* plugins, as lua-resty-limit-traffic
// and APISIX's limit-count-redis script count:
//
// - fixed windows (limit-count): a counter per key that expires with the
//   window, in a shared dictionary (exact across workers: one atomic incr with
//   the window as the initial TTL) or in Redis (one script call);
// - a leaky bucket (limit-req): excess and last-seen time per key;
// - a concurrency counter (limit-conn): incr on entry, decr on leave.
//
// Plus the key resolution the three share: `key_type` var, var_combination
// ("$remote_addr $http_x") or constant, falling back to remote_addr.

import type { SharedDict } from '../../native/shdict';
import type { PluginContext, PluginEnv } from '../types';
import type { RedisClient } from './redis';

export type KeyType = 'var' | 'var_combination' | 'constant';

const TEMPLATE_VAR = /\$\{([\w.-]+)\}|\$([\w-]+)/g;

/** APISIX's core.utils.resolve_var: "$a-$b" with vars substituted; resolved counts the non-empty ones. */
export function resolveTemplate(template: string, ctx: PluginContext): { value: string; resolved: number } {
  if (!template.includes('$')) return { value: template, resolved: 0 };
  let resolved = 0;
  const value = template.replace(TEMPLATE_VAR, (_match: string, braced: string | undefined, plain: string) => {
    const found = ctx.var(braced ?? plain);
    if (found === undefined || found === null || found === '') return '';
    resolved++;
    return Array.isArray(found) ? found.join(', ') : String(found);
  });
  return { value, resolved };
}

/** The limiting key of a request; remote_addr when the configured one has no value. */
export function resolveLimitKey(ctx: PluginContext, key: string, keyType: KeyType): string {
  if (keyType === 'constant') return key;
  if (keyType === 'var_combination') {
    const { value, resolved } = resolveTemplate(key, ctx);
    return resolved === 0 ? ctx.remoteAddr : value;
  }
  const value = ctx.var(key);
  if (value === undefined || value === null || value === '') return ctx.remoteAddr;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

export interface WindowResult {
  /** False when the request is over the limit. */
  readonly allowed: boolean;
  /** Requests left in this window (0 when rejected). */
  readonly remaining: number;
  /** Seconds until the window resets. */
  readonly reset: number;
}

/**
 * Take `cost` from a fixed window of `limit` requests per `windowSeconds` in a
 * shared dictionary. The counter counts down from the limit and is created
 * with the window as its TTL, so every worker sharing the dictionary counts
 * in the same window: incr is atomic across processes. The result is
 * reused by the next call: read it before taking again.
 */
export function takeFromLocalWindow(
  dict: SharedDict,
  key: string,
  limit: number,
  windowSeconds: number,
  cost = 1,
): WindowResult {
  const windowMs = windowSeconds * 1000;
  const counted = dict.incr(key, -cost, limit, windowMs);
  const remaining = counted ?? limit - cost;
  const ttlMs = counted === undefined ? windowMs : dict.incrTtlMs;
  const result = localResult;
  result.reset = Math.max(0, Math.ceil(ttlMs / 1000));
  result.allowed = remaining >= 0;
  result.remaining = remaining >= 0 ? remaining : 0;
  return result;
}

// One result object for every local take: callers read it synchronously before
// the next take, so the per-request path allocates no result.
const localResult = { allowed: true, remaining: 0, reset: 0 };

// KEYS[1] the counter; ARGV: limit, window seconds, cost. Returns {remaining, ttl}.
// A counter without a TTL (new, or left without one) starts a window.
const REDIS_WINDOW_SCRIPT = `
local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[1] - ARGV[3], 'EX', ARGV[2])
  return {ARGV[1] - ARGV[3], ARGV[2]}
end
return {redis.call('incrby', KEYS[1], 0 - ARGV[3]), ttl}
`;

const COMMAND = 'palisadeLimitWindow';
type WindowCommand = (key: string, limit: number, window: number, cost: number) => Promise<[number, number]>;
const scripted = new WeakSet<RedisClient>();

/** The same fixed window in Redis (one script call, EVALSHA after the first). */
export async function takeFromRedisWindow(
  client: RedisClient,
  key: string,
  limit: number,
  windowSeconds: number,
  cost = 1,
): Promise<WindowResult> {
  if (!scripted.has(client)) {
    client.defineCommand(COMMAND, { numberOfKeys: 1, lua: REDIS_WINDOW_SCRIPT });
    scripted.add(client);
  }
  const command = (client as unknown as Record<string, WindowCommand>)[COMMAND];
  const [remaining, ttl] = await command.call(client, key, limit, windowSeconds, cost);
  const reset = Math.max(0, Number(ttl));
  if (Number(remaining) < 0) return { allowed: false, remaining: 0, reset };
  return { allowed: true, remaining: Number(remaining), reset };
}

const LOCK_SUFFIX = ':lock';
const LOCK_TTL_MS = 50;
const LOCK_ATTEMPTS = 200;

/**
 * Leaky bucket (nginx limit_req): `rate` requests per second leak out, up to
 * `burst` more wait. Returns the delay in seconds for an accepted request, or
 * -1 when the request is over rate + burst. State (excess in thousandths of a
 * request, last time in ms) lives in two entries of the shared dictionary,
 * updated under a short lock taken with add() so workers do not interleave.
 */
export function leakyBucketIncoming(
  dict: SharedDict,
  key: string,
  rate: number,
  burst: number,
  now = Date.now(),
): number {
  const lockKey = key + LOCK_SUFFIX;
  let locked = false;
  // The section below is a few dictionary calls; spinning briefly beats queueing a timer.
  for (let attempt = 0; attempt < LOCK_ATTEMPTS && !locked; attempt++) locked = dict.add(lockKey, 1, LOCK_TTL_MS);
  try {
    const excessKey = key + ':excess';
    const lastKey = key + ':last';
    const rateMilli = rate * 1000;
    const previous = dict.get(excessKey);
    const last = dict.get(lastKey);
    let excess = 0;
    if (typeof previous === 'number' && typeof last === 'number') {
      const elapsed = Math.abs(now - last);
      excess = Math.max(previous - (rateMilli * elapsed) / 1000 + 1000, 0);
    }
    if (excess > burst * 1000) return -1;
    // Entries outlive the time the bucket needs to drain, then go.
    const keepMs = Math.ceil(((excess + 1000) / rateMilli) * 1000) + 1000;
    dict.set(excessKey, excess, keepMs);
    dict.set(lastKey, now, keepMs);
    return excess / rateMilli;
  } finally {
    if (locked) dict.delete(lockKey);
  }
}

/**
 * Concurrency counter (lua-resty-limit-conn): count this request in; -1 when
 * over conn + burst (not counted), else the delay in seconds for requests
 * over `conn` (unitDelay per multiple of conn already in).
 */
export function concurrencyIncoming(
  dict: SharedDict,
  key: string,
  conn: number,
  burst: number,
  unitDelay: number,
): number {
  const current = dict.incr(key, 1, 0) ?? 1;
  if (current > conn + burst) {
    dict.incr(key, -1, 0);
    return -1;
  }
  if (current > conn) return unitDelay * Math.floor((current - 1) / conn);
  return 0;
}

/** Count a request out. */
export function concurrencyLeaving(dict: SharedDict, key: string): void {
  // Left at 0 rather than deleted: another worker may be counting in between.
  dict.incr(key, -1, 0);
}

/**
 * The plugin's shared dictionary at compile time, or undefined when this
 * process has not opened it (yet): callers then look it up per request
 * through the context and report a failure there.
 */
export function dictAtCompile(env: PluginEnv, name: string): SharedDict | undefined {
  try {
    return env.dict(name);
  } catch {
    return undefined;
  }
}
