// http-logger: sends log entries in batches to an HTTP(S) server with a POST
// (undici). `concat_method` json sends a JSON array (or the single entry when
// batch_max_size is 1); new_line sends one JSON document per line.

import { Agent, request, type Dispatcher } from 'undici';

import { SharedBatchQueue, batchProcessorSchemaProperties, type BatchProcessorConf } from '../lib/batch-processor';
import {
  checkLogEntryConf,
  compileLogEntry,
  logBatchOptions,
  logBodyPhases,
  logEntrySchemaProperties,
  logMetadataSchema,
  type LogEntryBuilder,
  type LogEntryConf,
} from '../lib/log-entry';
import type { PluginModule } from '../types';

const NAME = 'http-logger';

export interface HttpLoggerConf extends BatchProcessorConf, LogEntryConf {
  readonly uri: string;
  readonly auth_header?: string;
  readonly timeout: number;
  readonly concat_method: 'json' | 'new_line';
  readonly ssl_verify: boolean;
}

export interface CompiledHttpLogger {
  readonly entries: LogEntryBuilder;
  readonly batches: SharedBatchQueue<Record<string, unknown>>;
}

/** Encodes a batch as the server receives it. */
export function encodeBatch(
  entries: readonly Record<string, unknown>[],
  conf: Pick<HttpLoggerConf, 'concat_method' | 'batch_max_size'>,
): { body: string; contentType: string } {
  if (conf.concat_method === 'new_line') {
    return { body: entries.map((entry) => JSON.stringify(entry)).join('\n'), contentType: 'text/plain' };
  }
  const body = conf.batch_max_size === 1 && entries.length === 1 ? entries[0] : entries;
  return { body: JSON.stringify(body), contentType: 'application/json' };
}

async function post(
  conf: HttpLoggerConf,
  dispatcher: Dispatcher | undefined,
  entries: readonly Record<string, unknown>[],
): Promise<void> {
  const { body, contentType } = encodeBatch(entries, conf);
  const headers: Record<string, string> = { 'content-type': contentType };
  if (conf.auth_header !== undefined) headers.authorization = conf.auth_header;
  const timeoutMs = conf.timeout * 1000;
  let status: number;
  try {
    const response = await request(conf.uri, {
      dispatcher,
      method: 'POST',
      headers,
      body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = response.statusCode;
    await response.body.dump();
  } catch (error) {
    throw new Error(`failed http request to ${conf.uri} error: ${(error as Error).message}`);
  }
  if (status >= 400) throw new Error(`server returned status code[${status}] uri[${conf.uri}]`);
}

/** The sender of one shared queue: https without ssl_verify (APISIX's default) skips certificate checks. */
function openTarget(conf: HttpLoggerConf) {
  const dispatcher =
    conf.uri.startsWith('https:') && !conf.ssl_verify
      ? new Agent({ connect: { rejectUnauthorized: false } })
      : undefined;
  return {
    send: (entries: readonly Record<string, unknown>[]) => post(conf, dispatcher, entries),
    close: async () => {
      await dispatcher?.close();
    },
  };
}

const httpLogger: PluginModule<CompiledHttpLogger> = {
  name: NAME,
  version: '0.1',
  priority: 410,
  schema: {
    type: 'object',
    properties: {
      uri: { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' },
      auth_header: { type: 'string' },
      timeout: { type: 'integer', minimum: 1, default: 3 },
      concat_method: { type: 'string', enum: ['json', 'new_line'], default: 'json' },
      ssl_verify: { type: 'boolean', default: false },
      ...logEntrySchemaProperties,
      ...batchProcessorSchemaProperties,
    },
    required: ['uri'],
  },
  metadataSchema: logMetadataSchema,

  check(conf, kind) {
    if (kind !== 'route') return undefined;
    return checkLogEntryConf(conf as HttpLoggerConf);
  },

  compile(raw, env) {
    const conf = raw as HttpLoggerConf;
    const entries = compileLogEntry(conf, env.metadata);
    return {
      entries,
      batches: new SharedBatchQueue(NAME, conf, () => openTarget(conf), env.log, logBatchOptions(entries)),
    };
  },

  ...logBodyPhases<CompiledHttpLogger>(NAME),

  log(compiled, ctx) {
    compiled.batches.push(compiled.entries.build(ctx, NAME));
  },
};

export default httpLogger;
