// request-id: give every request an id in `header_name` (kept when the client
// sent one), pass it upstream, and return it in the response
// (include_in_response) unless the upstream set that header itself.
// Algorithms as APISIX: uuid (v4), nanoid (21 URL-safe characters), range_id
// (`length` characters from `char_set`), ksuid (27 base62 characters, time
// ordered), plus uuidv7.

import { randomBytes, randomUUID } from 'node:crypto';

import type { JsonSchema, PluginModule } from '../types';

const DEFAULT_CHAR_SET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const NANOID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** KSUID timestamps count seconds from 2014-05-13T16:53:20Z. */
const KSUID_EPOCH = 1_400_000_000;

const schema: JsonSchema = {
  type: 'object',
  properties: {
    header_name: { type: 'string', default: 'X-Request-Id' },
    include_in_response: { type: 'boolean', default: true },
    algorithm: { type: 'string', enum: ['uuid', 'nanoid', 'range_id', 'ksuid', 'uuidv7'], default: 'uuid' },
    range_id: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 6, default: 16 },
        char_set: { type: 'string', minLength: 6, default: DEFAULT_CHAR_SET },
      },
      default: {},
    },
  },
};

interface RequestIdConf {
  header_name?: string;
  include_in_response?: boolean;
  algorithm?: 'uuid' | 'nanoid' | 'range_id' | 'ksuid' | 'uuidv7';
  range_id?: { length?: number; char_set?: string };
}

export interface CompiledRequestId {
  readonly headerName: string;
  /** Lower-case, for reading the request header. */
  readonly headerKey: string;
  readonly includeInResponse: boolean;
  readonly generate: () => string;
}

/** `length` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias). */
function randomString(alphabet: string, length: number): string {
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    const bytes = randomBytes(length * 2);
    for (let i = 0; i < bytes.length && out.length < length; i++) {
      if (bytes[i] < limit) out += alphabet[bytes[i] % alphabet.length];
    }
  }
  return out;
}

export function ksuid(now = Date.now()): string {
  const bytes = Buffer.alloc(20);
  bytes.writeUInt32BE(Math.floor(now / 1000) - KSUID_EPOCH, 0);
  randomBytes(16).copy(bytes, 4);
  let value = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  while (value > 0n) {
    out = BASE62[Number(value % 62n)] + out;
    value /= 62n;
  }
  return out.padStart(27, '0');
}

export function uuidv7(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6] & 0x0f);
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function generator(conf: RequestIdConf): () => string {
  switch (conf.algorithm ?? 'uuid') {
    case 'nanoid':
      return () => randomString(NANOID_ALPHABET, 21);
    case 'range_id': {
      const charSet = conf.range_id?.char_set ?? DEFAULT_CHAR_SET;
      const length = conf.range_id?.length ?? 16;
      return () => randomString(charSet, length);
    }
    case 'ksuid':
      return () => ksuid();
    case 'uuidv7':
      return () => uuidv7();
    default:
      return randomUUID;
  }
}

const requestId: PluginModule<CompiledRequestId> = {
  name: 'request-id',
  version: '0.1',
  priority: 12015,
  schema,
  compile(raw) {
    const conf = raw as RequestIdConf;
    const headerName = conf.header_name ?? 'X-Request-Id';
    return {
      headerName,
      headerKey: headerName.toLowerCase(),
      includeInResponse: conf.include_in_response !== false,
      generate: generator(conf),
    };
  },
  rewrite(compiled, ctx) {
    let id = ctx.header(compiled.headerKey);
    if (id === undefined) {
      id = compiled.generate();
      ctx.setHeader(compiled.headerName, id);
    }
    ctx.scratch('request-id')[compiled.headerKey] = id;
    return undefined;
  },
  header_filter(compiled, ctx) {
    if (!compiled.includeInResponse || ctx.responseHeader(compiled.headerKey) !== undefined) return undefined;
    const id = ctx.scratch('request-id')[compiled.headerKey];
    if (typeof id === 'string') ctx.setResponseHeader(compiled.headerName, id);
    return undefined;
  },
};

export default requestId;
