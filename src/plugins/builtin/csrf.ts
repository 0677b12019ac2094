// csrf: double-submit cookie protection (APISIX's csrf). Every response gets
// a signed token in the cookie `name`; an unsafe request (not GET, HEAD or
// OPTIONS) must send the same token in the header `name`, and the token must
// carry a valid signature that has not expired. The token is APISIX's:
// base64 of {"random":r,"expires":t,"sign":hex(sha256("{expires:t,random:r,key:k}"))},
// so tokens pass between APISIX and Palisade sharing a key. Signatures are
// compared in constant time.

import { createHash, randomInt, timingSafeEqual } from 'node:crypto';

import type { JsonSchema, PluginModule } from '../types';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    key: { type: 'string', description: 'use to generate csrf token' },
    expires: { type: 'integer', description: 'expires time(s) for csrf token', default: 7200 },
    name: { type: 'string', description: 'the csrf token name', default: 'apisix-csrf-token' },
  },
  required: ['key'],
};

interface CsrfConf {
  key: string;
  expires?: number;
  name?: string;
}

export interface CompiledCsrf {
  readonly key: string;
  readonly expires: number;
  readonly name: string;
  readonly cookieVar: string;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sign(random: number, expires: number, key: string): string {
  return createHash('sha256').update(`{expires:${expires},random:${random},key:${key}}`).digest('hex');
}

/** A new token: a random number, the issue time in seconds, and the signature. */
export function csrfToken(key: string, now = Date.now()): string {
  // math.random()'s shape (a float in [0,1)), from the CSPRNG.
  const random = randomInt(0, 2 ** 48 - 1) / 2 ** 48;
  const expires = Math.floor(now / 1000);
  return Buffer.from(JSON.stringify({ random, expires, sign: sign(random, expires, key) })).toString('base64');
}

/** Why the token fails, or undefined when it is valid. */
export function verifyCsrfToken(compiled: CompiledCsrf, token: string, now = Date.now()): string | undefined {
  let parsed: { random?: unknown; expires?: unknown; sign?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as typeof parsed;
  } catch {
    return 'csrf token base64 decode error';
  }
  if (parsed === null || typeof parsed !== 'object') return 'csrf token base64 decode error';
  const { random, expires, sign: signature } = parsed;
  if (typeof random !== 'number' || typeof expires !== 'number' || typeof signature !== 'string') {
    return 'no expires in token';
  }
  if (compiled.expires > 0 && Math.floor(now / 1000) - expires > compiled.expires) return 'token has expired';
  const expected = Buffer.from(sign(random, expires, compiled.key));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'Invalid signatures';
  return undefined;
}

const csrf: PluginModule<CompiledCsrf> = {
  name: 'csrf',
  version: '0.1',
  priority: 2980,
  schema,
  compile(raw) {
    const conf = raw as CsrfConf;
    const name = conf.name ?? 'apisix-csrf-token';
    return { key: conf.key, expires: conf.expires ?? 7200, name, cookieVar: `cookie_${name}` };
  },
  access(compiled, ctx) {
    if (SAFE_METHODS.has(ctx.method)) return undefined;
    const header = ctx.header(compiled.name.toLowerCase());
    if (header === undefined || header === '') return ctx.exit(401, { error_msg: 'no csrf token in headers' });
    const cookie = ctx.var(compiled.cookieVar);
    if (typeof cookie !== 'string' || cookie === '') return ctx.exit(401, { error_msg: 'no csrf cookie' });
    const a = Buffer.from(header);
    const b = Buffer.from(cookie);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return ctx.exit(401, { error_msg: 'csrf token mismatch' });
    const failure = verifyCsrfToken(compiled, cookie);
    if (failure !== undefined) {
      ctx.log.error(`csrf: ${failure}`);
      return ctx.exit(401, { error_msg: 'Failed to verify the csrf token signature' });
    }
    return undefined;
  },
  header_filter(compiled, ctx) {
    const now = Date.now();
    const token = csrfToken(compiled.key, now);
    const expires = new Date((Math.floor(now / 1000) + compiled.expires) * 1000).toUTCString();
    ctx.addResponseHeader('Set-Cookie', `${compiled.name}=${token};path=/;SameSite=Lax;Expires=${expires}`);
    return undefined;
  },
};

export default csrf;
