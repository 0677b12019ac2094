// jwt-auth: a JSON Web Token (from a header, a query argument or a cookie)
// names its consumer in a claim (default `key`) and is verified with that
// consumer's secret or public key: HS256/384/512 (HMAC), RS256/384/512
// (RSASSA-PKCS1-v1_5), PS256/384/512 (RSASSA-PSS), ES256/384/512 (ECDSA) and
// EdDSA, all through node:crypto. `exp` and `nbf` are checked with the
// consumer's lifetime_grace_period.

import { createHmac, createPublicKey, verify, constants, randomBytes, type KeyObject } from 'node:crypto';

import type { Consumer } from '../../schema/types';
import type { PluginContext, PluginModule, PhaseResult } from '../types';
import {
  anonymousConsumerSchema,
  attachConsumer,
  cookieHeaderWithout,
  cookieValue,
  digestsEqual,
  queryArgument,
  rejectOrAnonymous,
  rawTarget,
  withoutQueryArgument,
} from '../lib/auth';

const PLUGIN = 'jwt-auth';

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const ALGORITHMS = [
  ...HMAC_ALGORITHMS,
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

interface JwtAuthConf {
  header: string;
  query: string;
  cookie: string;
  hideCredentials: boolean;
  keyClaimName: string;
  storeInCtx: boolean;
  verifyExp: boolean;
  verifyNbf: boolean;
  anonymousConsumer: string | undefined;
  challenge: string;
}

/** The consumer's jwt-auth credential as validated (defaults filled in). */
interface JwtConsumerConf {
  key: string;
  secret?: string;
  public_key?: string;
  algorithm?: string;
  base64_secret?: boolean;
  lifetime_grace_period?: number;
}

/** Checks a signature over `signingInput`; built once per consumer configuration. */
interface Verifier {
  readonly algorithm: string;
  readonly gracePeriod: number;
  verify(signingInput: string, signature: Buffer): boolean;
}

function compile(raw: unknown): JwtAuthConf {
  const conf = raw as {
    header?: string;
    query?: string;
    cookie?: string;
    hide_credentials?: boolean;
    key_claim_name?: string;
    store_in_ctx?: boolean;
    claims_to_verify?: string[];
    anonymous_consumer?: string;
    realm?: string;
  };
  const claims = conf.claims_to_verify ?? ['exp', 'nbf'];
  return {
    header: (conf.header ?? 'authorization').toLowerCase(),
    query: conf.query ?? 'jwt',
    cookie: conf.cookie ?? 'jwt',
    hideCredentials: conf.hide_credentials === true,
    keyClaimName: conf.key_claim_name ?? 'key',
    storeInCtx: conf.store_in_ctx === true,
    verifyExp: claims.includes('exp'),
    verifyNbf: claims.includes('nbf'),
    anonymousConsumer: conf.anonymous_consumer,
    challenge: `Bearer realm="${conf.realm ?? 'jwt'}"`,
  };
}

function hashOf(algorithm: string): string {
  return algorithm === 'EdDSA' ? '' : `sha${algorithm.slice(2)}`;
}

/** A verifier for one consumer configuration; throws when its key cannot be used. */
export function createVerifier(conf: JwtConsumerConf): Verifier {
  const algorithm = conf.algorithm ?? 'HS256';
  const gracePeriod = conf.lifetime_grace_period ?? 0;
  if (HMAC_ALGORITHMS.includes(algorithm)) {
    // Never verify against an empty key: a consumer stored without its secret authenticates nobody.
    if (conf.secret === undefined || conf.secret === '') throw new Error('the consumer has no secret');
    const secret = Buffer.from(conf.secret, conf.base64_secret === true ? 'base64' : 'utf8');
    const hash = hashOf(algorithm);
    return {
      algorithm,
      gracePeriod,
      verify: (signingInput, signature) =>
        digestsEqual(signature, createHmac(hash, secret).update(signingInput).digest()),
    };
  }
  const key: KeyObject = createPublicKey(conf.public_key ?? '');
  if (algorithm === 'EdDSA') {
    return { algorithm, gracePeriod, verify: (input, signature) => verify(null, Buffer.from(input), key, signature) };
  }
  const hash = hashOf(algorithm);
  if (algorithm.startsWith('PS')) {
    const options = { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
    return {
      algorithm,
      gracePeriod,
      verify: (input, signature) => verify(hash, Buffer.from(input), options, signature),
    };
  }
  if (algorithm.startsWith('ES')) {
    // JWS carries ECDSA signatures as r||s (IEEE P1363), not DER.
    const options = { key, dsaEncoding: 'ieee-p1363' as const };
    return {
      algorithm,
      gracePeriod,
      verify: (input, signature) => verify(hash, Buffer.from(input), options, signature),
    };
  }
  return { algorithm, gracePeriod, verify: (input, signature) => verify(hash, Buffer.from(input), key, signature) };
}

// Consumer configurations are immutable per config version, so a verifier
// (and its KeyObject) is built once per configuration object and dropped with it.
const verifiers = new WeakMap<object, Verifier | Error>();

function verifierFor(conf: JwtConsumerConf): Verifier | Error {
  let verifier = verifiers.get(conf);
  if (verifier === undefined) {
    try {
      verifier = createVerifier(conf);
    } catch (error) {
      verifier = error instanceof Error ? error : new Error(String(error));
    }
    verifiers.set(conf, verifier);
  }
  return verifier;
}

interface DecodedToken {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  readonly signingInput: string;
  readonly signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeJsonSegment(segment: string): Record<string, unknown> | undefined {
  if (!BASE64URL.test(segment)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The three parts of a compact JWS, or undefined when the token is not one. */
export function decodeToken(token: string): DecodedToken | undefined {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return undefined;
  const header = decodeJsonSegment(token.slice(0, first));
  const payload = decodeJsonSegment(token.slice(first + 1, second));
  const signature = token.slice(second + 1);
  if (header === undefined || payload === undefined || !BASE64URL.test(signature)) return undefined;
  if (typeof header.alg !== 'string') return undefined;
  return { header, payload, signingInput: token.slice(0, second), signature: Buffer.from(signature, 'base64url') };
}

/** Why the claims fail (for the log), or undefined when they pass. Times are in seconds. */
function claimsError(
  conf: JwtAuthConf,
  payload: Record<string, unknown>,
  grace: number,
  now: number,
): string | undefined {
  if (conf.verifyExp && payload.exp !== undefined) {
    if (typeof payload.exp !== 'number') return "'exp' claim must be a number";
    if (now >= payload.exp + grace) return `'exp' claim expired at ${new Date(payload.exp * 1000).toUTCString()}`;
  }
  if (conf.verifyNbf && payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number') return "'nbf' claim must be a number";
    if (now < payload.nbf - grace) return `'nbf' claim not valid until ${new Date(payload.nbf * 1000).toUTCString()}`;
  }
  return undefined;
}

/** The token from the header (`Bearer ` optional), the query, then the cookie; hides it when asked. */
function fetchToken(conf: JwtAuthConf, ctx: PluginContext): string | undefined {
  const fromHeader = ctx.header(conf.header);
  if (fromHeader !== undefined) {
    if (conf.hideCredentials) ctx.setHeader(conf.header, null);
    const prefix = fromHeader.slice(0, 7);
    return prefix === 'Bearer ' || prefix === 'bearer ' ? fromHeader.slice(7) : fromHeader;
  }
  const fromQuery = queryArgument(ctx.requestUri, conf.query);
  if (fromQuery !== undefined) {
    if (conf.hideCredentials) ctx.setUri(withoutQueryArgument(rawTarget(ctx), conf.query));
    return fromQuery;
  }
  const cookies = ctx.header('cookie');
  const fromCookie = cookieValue(cookies, conf.cookie);
  if (fromCookie !== undefined && conf.hideCredentials && cookies !== undefined) {
    ctx.setHeader('cookie', cookieHeaderWithout(cookies, conf.cookie));
  }
  return fromCookie;
}

function authenticate(conf: JwtAuthConf, ctx: PluginContext): { consumer: Consumer } | { error: string } {
  const token = fetchToken(conf, ctx);
  if (token === undefined) return { error: 'Missing JWT token in request' };

  const decoded = decodeToken(token);
  if (decoded === undefined) return { error: 'JWT token invalid' };

  const userKey = decoded.payload[conf.keyClaimName];
  if (typeof userKey !== 'string') return { error: 'missing user key in JWT token' };

  const consumer = ctx.findConsumer(PLUGIN, 'key', userKey);
  if (consumer === undefined) return { error: 'Invalid user key in JWT token' };

  const verifier = verifierFor(consumer.plugins?.[PLUGIN] as unknown as JwtConsumerConf);
  if (verifier instanceof Error) {
    ctx.log.warn(`failed to verify jwt: the consumer's key cannot be used: ${verifier.message}`);
    return { error: 'failed to verify jwt' };
  }
  // The token must use the consumer's algorithm: a token cannot pick HMAC to have a public key taken as its secret.
  if (decoded.header.alg !== verifier.algorithm || !verifier.verify(decoded.signingInput, decoded.signature)) {
    ctx.log.warn('failed to verify jwt: signature mismatch');
    return { error: 'failed to verify jwt' };
  }
  const claims = claimsError(conf, decoded.payload, verifier.gracePeriod, Math.floor(Date.now() / 1000));
  if (claims !== undefined) {
    ctx.log.warn(`failed to verify jwt: ${claims}`);
    return { error: 'failed to verify jwt' };
  }
  if (conf.storeInCtx) ctx.scratch(PLUGIN).payload = decoded.payload;
  return { consumer };
}

function rewrite(conf: JwtAuthConf, ctx: PluginContext): PhaseResult {
  const result = authenticate(conf, ctx);
  if ('error' in result) return rejectOrAnonymous(ctx, PLUGIN, conf.anonymousConsumer, result.error, conf.challenge);
  attachConsumer(ctx, result.consumer);
  return undefined;
}

function check(raw: unknown, kind: 'route' | 'consumer' | 'metadata'): string | undefined {
  if (kind !== 'consumer') return undefined;
  const conf = raw as JwtConsumerConf;
  const algorithm = conf.algorithm ?? 'HS256';
  if (HMAC_ALGORITHMS.includes(algorithm)) {
    // As APISIX: an HMAC consumer without a secret gets a random one.
    if (conf.secret === undefined) conf.secret = randomBytes(32).toString('base64');
    else if (conf.base64_secret === true && !/^[A-Za-z0-9+/]*={0,2}$/.test(conf.secret)) {
      return 'base64_secret required but the secret is not in base64 format';
    }
    return undefined;
  }
  if (conf.public_key === undefined || conf.public_key === '') return 'missing valid public key';
  try {
    createVerifier(conf);
  } catch (error) {
    return `invalid public key: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}

const jwtAuth: PluginModule<JwtAuthConf> = {
  name: PLUGIN,
  version: '0.1',
  priority: 2510,
  type: 'auth',
  schema: {
    type: 'object',
    properties: {
      header: { type: 'string', default: 'authorization' },
      query: { type: 'string', default: 'jwt' },
      cookie: { type: 'string', default: 'jwt' },
      hide_credentials: { type: 'boolean', default: false },
      key_claim_name: { type: 'string', default: 'key', minLength: 1 },
      store_in_ctx: { type: 'boolean', default: false },
      claims_to_verify: {
        type: 'array',
        items: { type: 'string', enum: ['exp', 'nbf'] },
        uniqueItems: true,
        default: ['exp', 'nbf'],
      },
      anonymous_consumer: anonymousConsumerSchema,
      realm: { type: 'string', default: 'jwt' },
    },
  },
  consumerSchema: {
    type: 'object',
    properties: {
      key: { type: 'string' },
      secret: { type: 'string' },
      algorithm: { type: 'string', enum: ALGORITHMS, default: 'HS256' },
      exp: { type: 'integer', minimum: 1, default: 86400 },
      base64_secret: { type: 'boolean', default: false },
      lifetime_grace_period: { type: 'integer', minimum: 0, default: 0 },
      public_key: { type: 'string' },
    },
    required: ['key'],
  },
  check,
  compile,
  rewrite,
};

export default jwtAuth;
