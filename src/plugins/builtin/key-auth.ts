// key-auth: a consumer is identified by an API key sent in a header (default
// `apikey`) or, failing that, a query argument (default `apikey`).

import {
  headerName,
  isHeaderName,
  type HeaderName,
  type PluginContext,
  type PluginModule,
  type PhaseResult,
} from '../types';
import {
  anonymousConsumerSchema,
  attachConsumer,
  queryArgument,
  rejectOrAnonymous,
  rawTarget,
  withoutQueryArgument,
} from '../lib/auth';

const PLUGIN = 'key-auth';

interface KeyAuthConf {
  /** Prepared once; a name that is not a token (no request can carry it) stays a string. */
  header: HeaderName | string;
  query: string;
  hideCredentials: boolean;
  anonymousConsumer: string | undefined;
  /** The WWW-Authenticate value for a 401, built once. */
  challenge: string;
}

function compile(raw: unknown): KeyAuthConf {
  const conf = raw as {
    header?: string;
    query?: string;
    hide_credentials?: boolean;
    anonymous_consumer?: string;
    realm?: string;
  };
  const header = conf.header ?? 'apikey';
  return {
    header: isHeaderName(header) ? headerName(header) : header.toLowerCase(),
    query: conf.query ?? 'apikey',
    hideCredentials: conf.hide_credentials === true,
    anonymousConsumer: conf.anonymous_consumer,
    challenge: `apikey realm="${conf.realm ?? 'key'}"`,
  };
}

function rewrite(conf: KeyAuthConf, ctx: PluginContext): PhaseResult {
  let key = ctx.header(conf.header);
  const fromHeader = key !== undefined;
  if (key === undefined) key = queryArgument(ctx.requestUri, conf.query);
  if (key === undefined) {
    return rejectOrAnonymous(ctx, PLUGIN, conf.anonymousConsumer, 'Missing API key in request', conf.challenge);
  }

  // One Map lookup in the config version's consumer index, as APISIX's consumers_kv table.
  const consumer = ctx.findConsumer(PLUGIN, 'key', key);
  if (consumer === undefined) {
    return rejectOrAnonymous(ctx, PLUGIN, conf.anonymousConsumer, 'Invalid API key in request', conf.challenge);
  }

  if (conf.hideCredentials) {
    if (fromHeader) ctx.setHeader(conf.header, null);
    else ctx.setUri(withoutQueryArgument(rawTarget(ctx), conf.query));
  }
  attachConsumer(ctx, consumer);
  return undefined;
}

const keyAuth: PluginModule<KeyAuthConf> = {
  name: PLUGIN,
  version: '0.1',
  priority: 2500,
  type: 'auth',
  schema: {
    type: 'object',
    properties: {
      header: { type: 'string', default: 'apikey' },
      query: { type: 'string', default: 'apikey' },
      hide_credentials: { type: 'boolean', default: false },
      anonymous_consumer: anonymousConsumerSchema,
      realm: { type: 'string', default: 'key' },
    },
  },
  consumerSchema: {
    type: 'object',
    properties: {
      key: { type: 'string' },
    },
    required: ['key'],
  },
  compile,
  rewrite,
};

export default keyAuth;
