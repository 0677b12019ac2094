// The log entry the loggers send, in APISIX's shape (log-util's full log), or
// a custom `log_format` whose string values starting with `$` are variables:
//
//   { "host": "$host", "client_ip": "$remote_addr", "team": "edge" }
//
// `log_format` comes from the plugin's configuration, else from its plugin
// metadata.
//
// Bodies, only when the configuration asks (the loggers' phases() leave the
// phases out otherwise, so a plain logger route costs no body handling):
// - `include_req_body` (+ `include_req_body_expr`, evaluated when the body is
//   read, in access): the request body, up to `max_req_body_bytes`, as
//   `request.body`. A larger body is not read for the log (readBody() refuses
//   it): the entry says `request.body_truncated: true` and has no body.
// - `include_resp_body` (+ `include_resp_body_expr`, evaluated in body_filter,
//   when the status and response headers are known): the response body as the
//   client receives it, cut to `max_resp_body_bytes` (default 512 KiB, at a
//   UTF-8 character boundary), as `response.body`; a cut one also has
//   `response.body_truncated: true`. The data plane holds the response whole
//   for body_filter (up to its 8 MiB hold); a larger response streams through
//   and its entry has no body.

import { hostname } from 'node:os';

import { compileExpr, type CompiledExpr } from '../../core/expr';
import type { JsonSchema, Phase, PluginContext, PluginModule } from '../types';
import type { BatchProcessorOptions } from './batch-processor';

const PALISADE_VERSION = '0.1.0';
// os.hostname() is a system call: once per process.
const HOSTNAME = hostname();

/** The log fields every logger's configuration has. */
export interface LogEntryConf {
  readonly log_format?: Readonly<Record<string, unknown>>;
  readonly include_req_body?: boolean;
  readonly include_req_body_expr?: readonly unknown[];
  readonly max_req_body_bytes?: number;
  readonly include_resp_body?: boolean;
  readonly include_resp_body_expr?: readonly unknown[];
  readonly max_resp_body_bytes?: number;
}

export const logEntrySchemaProperties: Readonly<Record<string, JsonSchema>> = {
  log_format: { type: 'object' },
  include_req_body: { type: 'boolean', default: false },
  include_req_body_expr: { type: 'array', items: { type: 'array' } },
  include_resp_body: { type: 'boolean', default: false },
  include_resp_body_expr: { type: 'array', items: { type: 'array' } },
  max_req_body_bytes: { type: 'integer', minimum: 1, default: 524288 },
  max_resp_body_bytes: { type: 'integer', minimum: 1, default: 524288 },
};

/** Plugin metadata schema of the loggers: a default log_format. */
export const logMetadataSchema: JsonSchema = {
  type: 'object',
  properties: { log_format: { type: 'object' } },
};

/** The `check()` part shared by the loggers: the vars expressions compile. */
export function checkLogEntryConf(conf: LogEntryConf): string | undefined {
  for (const field of ['include_req_body_expr', 'include_resp_body_expr'] as const) {
    const expr = conf[field];
    if (expr === undefined) continue;
    try {
      compileExpr(expr);
    } catch (error) {
      return `failed to validate the '${field}' expression: ${(error as Error).message}`;
    }
  }
  return undefined;
}

type FormatField = readonly [key: string, variable: string | undefined, literal: unknown];

export interface LogEntryBuilder {
  /** True when the access phase has to read the request body for the entry. */
  readonly capturesRequestBody: boolean;
  /** True when body_filter has to see the response body for the entry. */
  readonly capturesResponseBody: boolean;
  /** The logger phases this configuration needs (a logger's phases()): access and body_filter only for bodies. */
  readonly phases: readonly Phase[];
  /** Access phase: read and keep the request body when the configuration asks for it. */
  captureRequestBody(ctx: PluginContext, plugin: string): Promise<void>;
  /** body_filter: keep (the start of) the response body when the configuration asks for it. */
  captureResponseBody(ctx: PluginContext, plugin: string, body: Buffer): void;
  /** Log phase: the entry for this request. */
  build(ctx: PluginContext, plugin: string): Record<string, unknown>;
}

/**
 * The body phases every logger shares: access only with include_req_body and
 * body_filter only with include_resp_body (phases()), so a plain logger route
 * neither waits for the request body nor holds the response.
 */
export function logBodyPhases<C extends { readonly entries: LogEntryBuilder }>(
  plugin: string,
): Required<Pick<PluginModule<C>, 'phases' | 'access' | 'body_filter'>> {
  return {
    phases: (compiled) => compiled.entries.phases,
    access: (compiled, ctx) => compiled.entries.captureRequestBody(ctx, plugin),
    body_filter: (compiled, ctx, body) => {
      compiled.entries.captureResponseBody(ctx, plugin, body);
      return undefined;
    },
  };
}

/** Scratch keys (ctx.scratch(plugin)) of the captured bodies. */
const REQUEST_BODY = 'requestBody';
const REQUEST_BODY_TRUNCATED = 'requestBodyTruncated';
const RESPONSE_BODY = 'responseBody';
const RESPONSE_BODY_TRUNCATED = 'responseBodyTruncated';

const DEFAULT_MAX_BODY_BYTES = 524288;

/** The first `maxBytes` of `body` as text, cut back to the start of a UTF-8 character so none is split. */
export function bodyText(body: Buffer, maxBytes: number): { text: string; truncated: boolean } {
  if (body.length <= maxBytes) return { text: body.toString('utf8'), truncated: false };
  let end = maxBytes;
  // 10xxxxxx is a continuation byte: step back to the byte that starts the character.
  while (end > 0 && (body[end] & 0xc0) === 0x80) end--;
  return { text: body.toString('utf8', 0, end), truncated: true };
}

/**
 * A captured body into the entry: into the full entry's own request/response
 * object, or (custom log_format) into a new one that replaces the key, whose
 * value may be a literal shared by every entry.
 */
function addBody(
  entry: Record<string, unknown>,
  full: boolean,
  side: 'request' | 'response',
  text: unknown,
  truncated: boolean,
): void {
  const target: Record<string, unknown> = full ? (entry[side] as Record<string, unknown>) : {};
  if (!full) entry[side] = target;
  if (text !== undefined) target.body = text;
  if (truncated) target.body_truncated = true;
}

/** An `include_*_body_expr` compiled, when its body is included and it is set. */
function bodyCondition(included: boolean, expr: readonly unknown[] | undefined): CompiledExpr | undefined {
  return included && expr !== undefined ? compileExpr(expr) : undefined;
}

/** Compile once per configuration: the format's variables and the body condition. */
export function compileLogEntry(
  conf: LogEntryConf,
  metadata: Readonly<Record<string, unknown>> | undefined,
): LogEntryBuilder {
  const format = conf.log_format ?? (metadata?.log_format as Readonly<Record<string, unknown>> | undefined);
  const fields: FormatField[] | undefined =
    format === undefined
      ? undefined
      : Object.entries(format).map(([key, value]) =>
          typeof value === 'string' && value.startsWith('$')
            ? [key, value.slice(1), undefined]
            : [key, undefined, value],
        );
  const includeRequestBody = conf.include_req_body === true;
  const requestCondition = bodyCondition(includeRequestBody, conf.include_req_body_expr);
  const maxRequestBytes = conf.max_req_body_bytes ?? DEFAULT_MAX_BODY_BYTES;
  const includeResponseBody = conf.include_resp_body === true;
  const responseCondition = bodyCondition(includeResponseBody, conf.include_resp_body_expr);
  const maxResponseBytes = conf.max_resp_body_bytes ?? DEFAULT_MAX_BODY_BYTES;
  const phases: Phase[] = [];
  if (includeRequestBody) phases.push('access');
  if (includeResponseBody) phases.push('body_filter');
  phases.push('log');

  return {
    capturesRequestBody: includeRequestBody,
    capturesResponseBody: includeResponseBody,
    phases: Object.freeze(phases),
    async captureRequestBody(ctx, plugin) {
      if (!includeRequestBody) return;
      if (requestCondition !== undefined && !requestCondition((name) => ctx.var(name))) return;
      try {
        const body = await ctx.readBody(maxRequestBytes);
        if (body !== undefined) ctx.scratch(plugin)[REQUEST_BODY] = body.toString('utf8');
      } catch {
        // Larger than max_req_body_bytes (or unreadable): the request goes on, the entry says so.
        ctx.scratch(plugin)[REQUEST_BODY_TRUNCATED] = true;
      }
    },
    captureResponseBody(ctx, plugin, body) {
      if (!includeResponseBody) return;
      if (responseCondition !== undefined && !responseCondition((name) => ctx.var(name))) return;
      const { text, truncated } = bodyText(body, maxResponseBytes);
      const scratch = ctx.scratch(plugin);
      scratch[RESPONSE_BODY] = text;
      if (truncated) scratch[RESPONSE_BODY_TRUNCATED] = true;
    },
    build(ctx, plugin) {
      const entry = fields === undefined ? fullLogEntry(ctx) : formattedLogEntry(ctx, fields);
      if (includeRequestBody || includeResponseBody) {
        const scratch = ctx.scratch(plugin);
        if (scratch[REQUEST_BODY] !== undefined || scratch[REQUEST_BODY_TRUNCATED] === true) {
          addBody(
            entry,
            fields === undefined,
            'request',
            scratch[REQUEST_BODY],
            scratch[REQUEST_BODY_TRUNCATED] === true,
          );
        }
        if (scratch[RESPONSE_BODY] !== undefined) {
          addBody(
            entry,
            fields === undefined,
            'response',
            scratch[RESPONSE_BODY],
            scratch[RESPONSE_BODY_TRUNCATED] === true,
          );
        }
      }
      return entry;
    },
  };
}

function capturedLength(side: unknown): number {
  const body = typeof side === 'object' && side !== null ? (side as Record<string, unknown>).body : undefined;
  return typeof body === 'string' ? body.length : 0;
}

/**
 * What an entry's captured bodies weigh, for the batch processor's byte bound
 * (string length: UTF-16 code units, close enough to bytes for a bound). An
 * entry that is a string (kafka-logger's origin format) weighs its length.
 */
export function capturedBodyLength(entry: unknown): number {
  if (typeof entry === 'string') return entry.length;
  if (typeof entry !== 'object' || entry === null) return 0;
  const record = entry as Record<string, unknown>;
  return capturedLength(record.request) + capturedLength(record.response);
}

/** A logger's batch processor options: entries with captured bodies count against the byte bound. */
export function logBatchOptions(builder: LogEntryBuilder): BatchProcessorOptions<unknown> {
  return builder.capturesRequestBody || builder.capturesResponseBody ? { weigh: capturedBodyLength } : {};
}

function formattedLogEntry(ctx: PluginContext, fields: readonly FormatField[]): Record<string, unknown> {
  const entry: Record<string, unknown> = {};
  for (const [key, variable, literal] of fields) {
    entry[key] = variable === undefined ? literal : (ctx.var(variable) ?? null);
  }
  return entry;
}

// The request headers logged: PluginContext reads headers by name only.
const LOGGED_REQUEST_HEADERS = [
  'host',
  'user-agent',
  'accept',
  'content-type',
  'content-length',
  'x-forwarded-for',
  'x-real-ip',
  'x-request-id',
];
const LOGGED_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-encoding', 'server', 'x-request-id'];

function collectHeaders(names: readonly string[], read: (name: string) => string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = read(name);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

function numberVar(ctx: PluginContext, name: string): number | undefined {
  const value = ctx.var(name);
  if (value === undefined || value === null || value === '') return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}

/** APISIX's full log entry (log-util get_full_log). */
export function fullLogEntry(ctx: PluginContext): Record<string, unknown> {
  const now = Date.now();
  const scheme = String(ctx.var('scheme') ?? 'http');
  const host = String(ctx.var('host') ?? ctx.header('host') ?? '');
  const port = ctx.var('server_port');
  const latency = now - ctx.startTime;
  // nginx reports $upstream_response_time in seconds.
  const upstreamSeconds = numberVar(ctx, 'upstream_response_time');
  const upstreamLatency = upstreamSeconds === undefined ? undefined : Math.round(upstreamSeconds * 1000);
  const query = ctx.requestUri.indexOf('?');
  const querystring: Record<string, string | string[]> = {};
  if (query >= 0) {
    for (const [name, value] of new URLSearchParams(ctx.requestUri.slice(query + 1))) {
      const previous = querystring[name];
      querystring[name] =
        previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
    }
  }
  const consumer = ctx.consumer;
  return {
    request: {
      url: `${scheme}://${host}${port === undefined || port === null ? '' : `:${String(port)}`}${ctx.requestUri}`,
      uri: ctx.requestUri,
      method: ctx.method,
      headers: collectHeaders(LOGGED_REQUEST_HEADERS, (name) => ctx.header(name)),
      querystring,
      size: numberVar(ctx, 'request_length') ?? 0,
    },
    response: {
      status: ctx.status,
      headers: collectHeaders(LOGGED_RESPONSE_HEADERS, (name) => ctx.responseHeader(name)),
      size: numberVar(ctx, 'bytes_sent') ?? 0,
    },
    server: { hostname: HOSTNAME, version: PALISADE_VERSION },
    upstream: ctx.var('upstream_addr') ?? undefined,
    service_id: ctx.serviceId === '' ? undefined : ctx.serviceId,
    route_id: ctx.routeId,
    consumer: consumer === undefined ? undefined : { username: consumer.username },
    client_ip: ctx.remoteAddr,
    start_time: ctx.startTime,
    latency,
    upstream_latency: upstreamLatency,
    apisix_latency: upstreamLatency === undefined ? latency : Math.max(0, latency - upstreamLatency),
  };
}
