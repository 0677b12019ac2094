// gzip: compresses responses whose client accepts gzip, of the configured
// `types`, at least `min_length` bytes (when the upstream says its length),
// not already encoded, with status 200, 403 or 404 (nginx's gzip filter rules).
// Compression runs on the offload pool (the `gzip` task, body transferred, not
// copied) so a large body does not hold up the worker's other requests. When
// the pool refuses the task (its queue is full), the body goes out
// uncompressed rather than being compressed on the proxying thread: the
// response head is written after body_filter, so Content-Encoding is taken
// back there.

import { gzipSync } from 'node:zlib';

import { ownsWholeBuffer } from '../../core/buffers';
import { OffloadRefusedError } from '../offload';
import type { PluginContext, PluginModule } from '../types';

const NAME = 'gzip';

export interface GzipConf {
  readonly types: readonly string[] | '*';
  readonly min_length: number;
  readonly comp_level: number;
  readonly http_version: number;
  readonly buffers: { readonly number: number; readonly size: number };
  readonly vary?: boolean;
}

export interface CompiledGzip {
  readonly anyType: boolean;
  readonly types: ReadonlySet<string>;
  readonly minLength: number;
  readonly level: number;
  readonly chunkSize: number;
  readonly minHttpVersion: number;
  readonly vary: boolean;
}

export interface GzipTask {
  readonly body: Uint8Array;
  readonly level: number;
  readonly chunkSize: number;
}

/** Runs on an offload worker thread. */
export function gzipTask(payload: unknown): Uint8Array {
  const { body, level, chunkSize } = payload as GzipTask;
  return gzipSync(body, { level, chunkSize });
}

// Under this size the hop to a worker thread costs more than compressing here.
export const INLINE_GZIP_LIMIT = 16 * 1024;
/**
 * The data plane holds at most this much response body for body_filter (MAX_FILTERED_BODY in
 * dataplane/connection.ts) and streams a longer one unfiltered: such a response must keep its encoding.
 */
export const MAX_HELD_BODY = 8 * 1024 * 1024;

const COMPRESS = 'compress';
const ORIGINAL_ETAG = 'etag';

/** Accept-Encoding lists gzip without q=0. */
function acceptsGzip(ctx: PluginContext): boolean {
  const accept = ctx.header('accept-encoding');
  if (accept === undefined) return false;
  for (const part of accept.split(',')) {
    const [coding, ...parameters] = part.split(';');
    if (coding.trim().toLowerCase() !== 'gzip') continue;
    const quality = parameters.find((parameter) => parameter.trim().startsWith('q='));
    return quality === undefined || Number(quality.trim().slice(2)) > 0;
  }
  return false;
}

function httpVersion(ctx: PluginContext): number {
  const protocol = ctx.var('server_protocol');
  if (typeof protocol !== 'string') return 1.1;
  const version = Number(protocol.slice(protocol.indexOf('/') + 1));
  return Number.isFinite(version) ? version : 1.1;
}

/** A body that owns its whole ArrayBuffer, so transferring it moves nothing else (pooled Buffers share one). */
function ownedBytes(body: Buffer): Uint8Array {
  if (ownsWholeBuffer(body)) return body;
  return new Uint8Array(body);
}

/** Undo header_filter's edits: the body goes out as the upstream sent it. */
function uncompressed(ctx: PluginContext): void {
  const scratch = ctx.scratch(NAME);
  ctx.setResponseHeader('content-encoding', null);
  const etag = scratch[ORIGINAL_ETAG];
  if (typeof etag === 'string') ctx.setResponseHeader('etag', etag);
}

const gzip: PluginModule<CompiledGzip> = {
  name: NAME,
  version: '0.1',
  priority: 995,
  schema: {
    type: 'object',
    properties: {
      types: {
        anyOf: [{ type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }, { enum: ['*'] }],
        default: ['text/html'],
      },
      min_length: { type: 'integer', minimum: 1, default: 20 },
      comp_level: { type: 'integer', minimum: 1, maximum: 9, default: 1 },
      http_version: { enum: [1.1, 1.0], default: 1.1 },
      buffers: {
        type: 'object',
        properties: {
          number: { type: 'integer', minimum: 1, default: 32 },
          size: { type: 'integer', minimum: 1, default: 4096 },
        },
        default: { number: 32, size: 4096 },
      },
      vary: { type: 'boolean' },
    },
  },

  compile(raw) {
    const conf = raw as GzipConf;
    const types = conf.types === '*' ? [] : conf.types.map((type) => type.toLowerCase());
    // nginx always compresses text/html.
    return {
      anyType: conf.types === '*',
      types: new Set([...types, 'text/html']),
      minLength: conf.min_length,
      level: conf.comp_level,
      chunkSize: Math.max(64, conf.buffers.size),
      minHttpVersion: conf.http_version,
      vary: conf.vary === true,
    };
  },

  header_filter(conf, ctx) {
    const status = ctx.status;
    if (status !== 200 && status !== 403 && status !== 404) return undefined;
    if (ctx.method === 'HEAD' || !acceptsGzip(ctx)) return undefined;
    if (httpVersion(ctx) < conf.minHttpVersion) return undefined;
    if (ctx.responseHeader('content-encoding') !== undefined) return undefined;
    const contentType = ctx.responseHeader('content-type');
    if (!conf.anyType) {
      if (contentType === undefined) return undefined;
      const semicolon = contentType.indexOf(';');
      const mime = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
      if (!conf.types.has(mime)) return undefined;
    }
    const length = ctx.responseHeader('content-length');
    if (length !== undefined && Number(length) < conf.minLength) return undefined;
    if (length !== undefined && Number(length) > MAX_HELD_BODY) return undefined;

    ctx.scratch(NAME)[COMPRESS] = true;
    ctx.setResponseHeader('content-encoding', 'gzip');
    ctx.setResponseHeader('content-length', null);
    const etag = ctx.responseHeader('etag');
    if (etag !== undefined && etag.startsWith('"')) {
      ctx.scratch(NAME)[ORIGINAL_ETAG] = etag;
      ctx.setResponseHeader('etag', `W/${etag}`);
    }
    if (conf.vary) ctx.addResponseHeader('vary', 'Accept-Encoding');
    return undefined;
  },

  body_filter(conf, ctx, body) {
    if (ctx.scratch(NAME)[COMPRESS] !== true) return undefined;
    if (body.length < INLINE_GZIP_LIMIT) return gzipSync(body, { level: conf.level, chunkSize: conf.chunkSize });
    const bytes = ownedBytes(body);
    const task: GzipTask = { body: bytes, level: conf.level, chunkSize: conf.chunkSize };
    return ctx.offload<Uint8Array>('gzip', task, [bytes.buffer as ArrayBuffer]).then(
      (compressed) => Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength),
      (err: unknown) => {
        if (!(err instanceof OffloadRefusedError)) throw err;
        // The pool is saturated: send the body as it is (the refused task never took it).
        uncompressed(ctx);
        return body;
      },
    );
  },

  tasks: { gzip: gzipTask },
};

export default gzip;
