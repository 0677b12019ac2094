// What the auth plugins share: constant-time comparison of secrets, the 401
// answer with its challenge header, attaching a consumer with the headers
// APISIX sends upstream, the anonymous-consumer fallback, and removing a
// credential from the query string or the Cookie header (hide_credentials).

import { createHash, timingSafeEqual } from 'node:crypto';

import type { Consumer } from '../../schema/types';
import { headerName, type JsonSchema, type PluginContext, type PluginExit } from '../types';

/** APISIX's schema_def.anonymous_consumer_schema. */
export const anonymousConsumerSchema: JsonSchema = { type: 'string', minLength: 1 };

/** The message APISIX answers with when the anonymous consumer itself is missing. */
export const INVALID_USER_AUTHORIZATION = 'Invalid user authorization';

/**
 * True when the two byte strings are equal, in time that depends only on their
 * lengths. Both sides are hashed first so buffers of different lengths still go
 * through timingSafeEqual (which needs equal lengths) and leak nothing but that.
 */
export function secretsEqual(presented: string | Buffer, expected: string | Buffer): boolean {
  const left = createHash('sha256').update(presented).digest();
  const right = createHash('sha256').update(expected).digest();
  return timingSafeEqual(left, right);
}

/** Equal-length digests (e.g. two HMACs of one algorithm) compared in constant time. */
export function digestsEqual(presented: Buffer, expected: Buffer): boolean {
  if (presented.length !== expected.length) return false;
  return timingSafeEqual(presented, expected);
}

/** APISIX's `return 401, { message = ... }`, with the plugin's WWW-Authenticate challenge when it has one. */
export function unauthorized(ctx: PluginContext, message: string, challenge?: string): PluginExit {
  return ctx.exit(401, { message }, challenge === undefined ? undefined : { 'WWW-Authenticate': challenge });
}

const CONSUMER_USERNAME = headerName('X-Consumer-Username');
const CREDENTIAL_IDENTIFIER = headerName('X-Credential-Identifier');
const CONSUMER_CUSTOM_ID = headerName('X-Consumer-Custom-ID');

/**
 * APISIX's consumer.attach_consumer: the consumer on the context, and the
 * identity headers sent upstream. A header with no value is removed, so a
 * client cannot pass its own X-Consumer-* headers through.
 */
export function attachConsumer(ctx: PluginContext, consumer: Consumer, credentialId?: string): void {
  ctx.attachConsumer(consumer, credentialId);
  const customId = consumer.labels?.custom_id;
  ctx.setHeader(CONSUMER_USERNAME, consumer.username);
  ctx.setHeader(CREDENTIAL_IDENTIFIER, credentialId ?? null);
  ctx.setHeader(CONSUMER_CUSTOM_ID, typeof customId === 'string' ? customId : null);
}

/**
 * What an auth plugin answers when it found no consumer: 401 with `message`, or,
 * with `anonymous_consumer` set, that consumer attached (401 "Invalid user
 * authorization" when it does not exist).
 */
export function rejectOrAnonymous(
  ctx: PluginContext,
  plugin: string,
  anonymousConsumer: string | undefined,
  message: string,
  challenge?: string,
): PluginExit | undefined {
  if (anonymousConsumer === undefined) return unauthorized(ctx, message, challenge);
  const anonymous = ctx.findConsumerByName?.(anonymousConsumer);
  if (anonymous === undefined) {
    ctx.log.error(
      `${plugin} failed to authenticate the request, code: 401. error: failed to get anonymous consumer ${anonymousConsumer}`,
    );
    return unauthorized(ctx, INVALID_USER_AUTHORIZATION, challenge);
  }
  attachConsumer(ctx, anonymous);
  return undefined;
}

function decodeQueryComponent(text: string): string {
  const spaced = text.includes('+') ? text.replace(/\+/g, ' ') : text;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced; // malformed %-escapes stay as sent, as nginx's arg parser keeps them
  }
}

/** The request target exactly as the client sent it (APISIX's real_request_uri), to edit and send upstream. */
export function rawTarget(ctx: PluginContext): string {
  const raw = ctx.var('real_request_uri');
  return typeof raw === 'string' ? raw : ctx.requestUri;
}

/** The first value of query argument `name` (decoded), from a path-and-query; undefined when absent. */
export function queryArgument(requestUri: string, name: string): string | undefined {
  const start = requestUri.indexOf('?');
  if (start < 0) return undefined;
  for (const pair of requestUri.slice(start + 1).split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const key = decodeQueryComponent(equals < 0 ? pair : pair.slice(0, equals));
    if (key === name) return equals < 0 ? '' : decodeQueryComponent(pair.slice(equals + 1));
  }
  return undefined;
}

/** The path-and-query with every occurrence of argument `name` removed; the other arguments stay byte for byte. */
export function withoutQueryArgument(requestUri: string, name: string): string {
  const start = requestUri.indexOf('?');
  if (start < 0) return requestUri;
  const kept = requestUri
    .slice(start + 1)
    .split('&')
    .filter((pair) => {
      if (pair === '') return false;
      const equals = pair.indexOf('=');
      return decodeQueryComponent(equals < 0 ? pair : pair.slice(0, equals)) !== name;
    });
  const path = requestUri.slice(0, start);
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`;
}

/** The value of cookie `name` in a Cookie header; undefined when absent. */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const pair of cookieHeader.split(';')) {
    const equals = pair.indexOf('=');
    if (equals < 0) continue;
    if (pair.slice(0, equals).trim() === name) return pair.slice(equals + 1).trim();
  }
  return undefined;
}

/** The Cookie header without cookie `name`; null when nothing is left. */
export function cookieHeaderWithout(cookieHeader: string, name: string): string | null {
  const kept = cookieHeader
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => {
      if (pair === '') return false;
      const equals = pair.indexOf('=');
      return (equals < 0 ? pair : pair.slice(0, equals)).trim() !== name;
    });
  return kept.length === 0 ? null : kept.join('; ');
}
