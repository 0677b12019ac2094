// hmac-auth: HTTP message signatures as APISIX 3 implements them
// (draft-cavage-http-signatures-12):
//
//   Authorization: Signature keyId="k",algorithm="hmac-sha256",headers="@request-target date",signature="<base64>"
//
// The signing string is the keyId, then one line per listed header,
// `name: value` (`@request-target` is `METHOD request_uri`), each ending in
// "\n". The Date header must lie within clock_skew seconds of now, every route
// `signed_headers` entry must be signed, and with validate_request_body the
// `Digest: SHA-256=<base64>` header must match the body. The client only sees
// "client request can't be validated"; the reason goes to the log.

import { createHash, createHmac } from 'node:crypto';

import type { Consumer } from '../../schema/types';
import type { PluginContext, PluginModule, PhaseResult } from '../types';
import { anonymousConsumerSchema, attachConsumer, digestsEqual, rejectOrAnonymous } from '../lib/auth';

const PLUGIN = 'hmac-auth';
const CANNOT_VALIDATE = "client request can't be validated";

const ALGORITHMS = ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'];
const HASH_OF: Readonly<Record<string, string>> = {
  'hmac-sha1': 'sha1',
  'hmac-sha256': 'sha256',
  'hmac-sha512': 'sha512',
};

interface HmacAuthConf {
  allowedAlgorithms: ReadonlySet<string>;
  clockSkew: number;
  signedHeaders: readonly string[];
  validateRequestBody: boolean;
  maxRequestBodySize: number;
  hideCredentials: boolean;
  anonymousConsumer: string | undefined;
}

function compile(raw: unknown): HmacAuthConf {
  const conf = raw as {
    allowed_algorithms?: string[];
    clock_skew?: number;
    signed_headers?: string[];
    validate_request_body?: boolean;
    max_req_body_size?: number;
    hide_credentials?: boolean;
    anonymous_consumer?: string;
  };
  return {
    allowedAlgorithms: new Set(conf.allowed_algorithms ?? ALGORITHMS),
    clockSkew: conf.clock_skew ?? 300,
    signedHeaders: (conf.signed_headers ?? []).map((name) => name.toLowerCase()),
    validateRequestBody: conf.validate_request_body === true,
    maxRequestBodySize: conf.max_req_body_size ?? 64 * 1024 * 1024,
    hideCredentials: conf.hide_credentials === true,
    anonymousConsumer: conf.anonymous_consumer,
  };
}

export interface SignatureParams {
  keyId?: string;
  algorithm?: string;
  headers?: string;
  signature?: string;
}

const SIGNATURE_PREFIX = /^\s*Signature\s+/;
const PARAM = /\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)/y;

/** The `key="value"` parameters of a `Signature ...` Authorization header; undefined when it is not one. */
export function parseSignatureHeader(header: string): SignatureParams | undefined {
  const prefix = SIGNATURE_PREFIX.exec(header);
  if (prefix === null) return undefined;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  PARAM.lastIndex = prefix[0].length;
  while (PARAM.lastIndex < header.length) {
    const match = PARAM.exec(header);
    if (match === null) return undefined;
    params[match[1]] = match[2];
  }
  return { keyId: params.keyId, algorithm: params.algorithm, headers: params.headers, signature: params.signature };
}

/** The string the client signed: keyId, then each listed header as `name: value`, each line ending in "\n". */
export function signingString(ctx: PluginContext, keyId: string, headerNames: readonly string[]): string {
  let text = keyId + '\n';
  for (const name of headerNames) {
    const value = ctx.header(name);
    if (value !== undefined) text += `${name}: ${value}\n`;
    else if (name === '@request-target') text += `${ctx.method} ${ctx.requestUri === '' ? '/' : ctx.requestUri}\n`;
  }
  return text;
}

/** An HTTP date (IMF-fixdate and the other forms Date.parse reads) in seconds, or undefined. */
function parseHttpDate(text: string): number | undefined {
  if (!/GMT$/.test(text.trim())) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

type Verdict = { consumer: Consumer } | { error: string };

/** Everything but the body: the header, the consumer, algorithm, clock skew, signed headers, signature. */
function verifySignature(conf: HmacAuthConf, ctx: PluginContext): Verdict {
  const authorization = ctx.header('authorization');
  if (authorization === undefined) return { error: 'missing Authorization header' };
  const params = parseSignatureHeader(authorization);
  if (params === undefined) return { error: "Authorization header does not start with 'Signature'" };
  if (params.keyId === undefined || params.signature === undefined) return { error: 'keyId or signature missing' };

  const consumer = ctx.findConsumer(PLUGIN, 'key_id', params.keyId);
  if (consumer === undefined) return { error: 'Invalid key_id' };
  const secret = (consumer.plugins?.[PLUGIN] as { secret_key?: unknown } | undefined)?.secret_key;
  if (typeof secret !== 'string') return { error: 'Invalid key_id' };

  const algorithm = params.algorithm ?? '';
  if (!conf.allowedAlgorithms.has(algorithm)) return { error: 'Invalid algorithm' };

  if (conf.clockSkew > 0) {
    const date = ctx.header('date');
    if (date === undefined) return { error: 'Date header missing. failed to validate clock skew' };
    const time = parseHttpDate(date);
    if (time === undefined) return { error: 'Invalid GMT format time' };
    if (Math.abs(Math.floor(Date.now() / 1000) - time) > conf.clockSkew) return { error: 'Clock skew exceeded' };
  }

  const headerNames = params.headers === undefined ? [] : params.headers.split(' ').filter((name) => name !== '');
  if (conf.signedHeaders.length > 0) {
    if (headerNames.length === 0) return { error: 'headers missing' };
    for (const required of conf.signedHeaders) {
      if (!headerNames.includes(required)) return { error: `expected header "${required}" missing in signing` };
    }
  }

  const expected = createHmac(HASH_OF[algorithm], secret)
    .update(signingString(ctx, params.keyId, headerNames))
    .digest();
  if (!digestsEqual(Buffer.from(params.signature, 'base64'), expected)) return { error: 'Invalid signature' };
  return { consumer };
}

/** `Digest: SHA-256=<base64 of the body's SHA-256>`; an absent body digests as the empty string. */
async function verifyBodyDigest(conf: HmacAuthConf, ctx: PluginContext): Promise<string | undefined> {
  const digest = ctx.header('digest');
  if (digest === undefined) return 'Invalid digest';
  let body: Buffer | undefined;
  try {
    body = await ctx.readBody(conf.maxRequestBodySize);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  const expected =
    'SHA-256=' +
    createHash('sha256')
      .update(body ?? Buffer.alloc(0))
      .digest('base64');
  return digestsEqual(Buffer.from(digest), Buffer.from(expected)) ? undefined : 'Invalid digest';
}

function reject(conf: HmacAuthConf, ctx: PluginContext, reason: string): PhaseResult {
  ctx.log.warn(`${CANNOT_VALIDATE}: ${reason}`);
  return rejectOrAnonymous(ctx, PLUGIN, conf.anonymousConsumer, CANNOT_VALIDATE);
}

function accept(conf: HmacAuthConf, ctx: PluginContext, consumer: Consumer): PhaseResult {
  if (conf.hideCredentials) ctx.setHeader('authorization', null);
  attachConsumer(ctx, consumer);
  return undefined;
}

function rewrite(conf: HmacAuthConf, ctx: PluginContext): PhaseResult | Promise<PhaseResult> {
  const verdict = verifySignature(conf, ctx);
  if ('error' in verdict) return reject(conf, ctx, verdict.error);
  // Only a route that validates bodies waits for one; everything else stays synchronous.
  if (!conf.validateRequestBody) return accept(conf, ctx, verdict.consumer);
  return verifyBodyDigest(conf, ctx).then((error) =>
    error === undefined ? accept(conf, ctx, verdict.consumer) : reject(conf, ctx, error),
  );
}

const hmacAuth: PluginModule<HmacAuthConf> = {
  name: PLUGIN,
  version: '0.1',
  priority: 2530,
  type: 'auth',
  schema: {
    type: 'object',
    title: 'work with route or service object',
    properties: {
      allowed_algorithms: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', enum: ALGORITHMS },
        default: ALGORITHMS,
      },
      clock_skew: { type: 'integer', minimum: 1, default: 300 },
      signed_headers: {
        type: 'array',
        items: { type: 'string', minLength: 1, maxLength: 50 },
      },
      validate_request_body: { type: 'boolean', default: false },
      max_req_body_size: { type: 'integer', minimum: 1, default: 64 * 1024 * 1024 },
      hide_credentials: { type: 'boolean', default: false },
      anonymous_consumer: anonymousConsumerSchema,
    },
  },
  consumerSchema: {
    type: 'object',
    title: 'work with consumer object',
    properties: {
      key_id: { type: 'string' },
      secret_key: { type: 'string' },
    },
    required: ['key_id', 'secret_key'],
  },
  compile,
  rewrite,
};

export default hmacAuth;
