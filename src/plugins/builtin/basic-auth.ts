// basic-auth: `Authorization: Basic base64(username:password)` checked against
// the consumers' basic-auth credentials; the password is compared in constant time.

import type { PluginContext, PluginModule, PhaseResult } from '../types';
import { anonymousConsumerSchema, attachConsumer, rejectOrAnonymous, secretsEqual } from '../lib/auth';

const PLUGIN = 'basic-auth';

interface BasicAuthConf {
  hideCredentials: boolean;
  anonymousConsumer: string | undefined;
  challenge: string;
}

function compile(raw: unknown): BasicAuthConf {
  const conf = raw as { hide_credentials?: boolean; anonymous_consumer?: string; realm?: string };
  return {
    hideCredentials: conf.hide_credentials === true,
    anonymousConsumer: conf.anonymous_consumer,
    challenge: `Basic realm="${conf.realm ?? 'basic'}"`,
  };
}

const BASIC = /^\s*Basic\s+(\S+)\s*$/i;

/** Username and password from an Authorization header, or undefined when it is not a well-formed Basic credential. */
export function parseBasicAuthorization(header: string): { username: string; password: string } | undefined {
  const match = BASIC.exec(header);
  if (match === null) return undefined;
  const encoded = match[1];
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  // APISIX strips whitespace from both parts; the password is everything after the first colon (RFC 7617).
  return {
    username: decoded.slice(0, colon).replace(/\s+/g, ''),
    password: decoded.slice(colon + 1).replace(/\s+/g, ''),
  };
}

/** No consumer from the credentials: 401, or the anonymous consumer (credentials still hidden, as APISIX). */
function fail(conf: BasicAuthConf, ctx: PluginContext, message: string): PhaseResult {
  const exit = rejectOrAnonymous(ctx, PLUGIN, conf.anonymousConsumer, message, conf.challenge);
  if (exit === undefined && conf.hideCredentials) ctx.setHeader('authorization', null);
  return exit;
}

function rewrite(conf: BasicAuthConf, ctx: PluginContext): PhaseResult {
  const authorization = ctx.header('authorization');
  if (authorization === undefined) return fail(conf, ctx, 'Missing authorization in request');
  const credentials = parseBasicAuthorization(authorization);
  if (credentials === undefined) return fail(conf, ctx, 'Invalid authorization in request');

  const consumer = ctx.findConsumer(PLUGIN, 'username', credentials.username);
  const expected = (consumer?.plugins?.[PLUGIN] as { password?: unknown } | undefined)?.password;
  // The comparison runs (against a dummy) even for an unknown user so timing does not tell which usernames exist.
  const passwordMatches = secretsEqual(credentials.password, typeof expected === 'string' ? expected : '\0');
  if (consumer === undefined || typeof expected !== 'string' || !passwordMatches) {
    return fail(conf, ctx, 'Invalid user authorization');
  }

  if (conf.hideCredentials) ctx.setHeader('authorization', null);
  attachConsumer(ctx, consumer);
  return undefined;
}

const basicAuth: PluginModule<BasicAuthConf> = {
  name: PLUGIN,
  version: '0.1',
  priority: 2520,
  type: 'auth',
  schema: {
    type: 'object',
    title: 'work with route or service object',
    properties: {
      hide_credentials: { type: 'boolean', default: false },
      anonymous_consumer: anonymousConsumerSchema,
      realm: { type: 'string', default: 'basic' },
    },
  },
  consumerSchema: {
    type: 'object',
    title: 'work with consumer object',
    properties: {
      username: { type: 'string' },
      password: { type: 'string' },
    },
    required: ['username', 'password'],
  },
  compile,
  rewrite,
};

export default basicAuth;
