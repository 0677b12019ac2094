// Mirror of native/palisade.h: result codes, flags and the out[] layout shared
// by the ffi, napi and js backends. Keep the two files in step.

export const INCOMPLETE = 0;

export const enum ParseError {
  BadRequest = -1,
  BadMethod = -2,
  BadTarget = -3,
  BadVersion = -4,
  BadHeaderName = -5,
  BadHeaderValue = -6,
  ObsFold = -7,
  ContentLengthAndTransferEncoding = -8,
  DuplicateContentLength = -9,
  BadContentLength = -10,
  BadTransferEncoding = -11,
  TooManyHeaders = -12,
  MissingHost = -13,
  BadStatus = -14,
  BadChunk = -15,
  ChunkTooBig = -16,
  Router = -17,
  /** A path that needs normalising is longer than URI_CAPACITY (nginx answers 414). */
  UriTooLong = -18,
}

export const MAX_HEADERS = 100;
export const MAX_CANDIDATES = 16;

export const enum Method {
  Other = 0,
  GET = 1,
  HEAD = 2,
  POST = 3,
  PUT = 4,
  DELETE = 5,
  CONNECT = 6,
  OPTIONS = 7,
  TRACE = 8,
  PATCH = 9,
  PURGE = 10,
}

export const METHOD_CODES: Readonly<Record<string, number>> = {
  GET: 1,
  HEAD: 2,
  POST: 3,
  PUT: 4,
  DELETE: 5,
  CONNECT: 6,
  OPTIONS: 7,
  TRACE: 8,
  PATCH: 9,
  PURGE: 10,
};

export const enum Flag {
  Chunked = 1 << 0,
  ContentLength = 1 << 1,
  KeepAlive = 1 << 2,
  Upgrade = 1 << 3,
  ExpectContinue = 1 << 4,
  HasHost = 1 << 5,
  NoBody = 1 << 6,
  ReadToClose = 1 << 7,
  HopHeaders = 1 << 8,
  /** A line a proxy never forwards: TE, Trailer, Upgrade, Keep-Alive, Proxy-Connection, or a Connection other than exactly `keep-alive`. */
  HopLines = 1 << 9,
}

export const enum Out {
  Status = 0,
  Method = 1, // response: status code
  MethodEnd = 2,
  TargetStart = 3, // response: reason span
  TargetEnd = 4,
  PathEnd = 5,
  Version = 6,
  Flags = 7,
  ContentLengthHi = 8,
  ContentLengthLo = 9,
  HostStart = 10,
  HostEnd = 11,
  HeaderCount = 12,
  RouteCount = 13,
  Routes = 14,
  /** -1: the path span is already $uri; else the length of the normalised path in the URI area. */
  UriLength = 30,
  Headers = 32,
  /** URI area: URI_CAPACITY bytes (not int32 slots) from this slot on. */
  Uri = Headers + 4 * MAX_HEADERS,
}

/** Bytes in the URI area of out[]: nginx's default request line limit. */
export const URI_CAPACITY = 8192;

export const OUT_SIZE = Out.Uri + URI_CAPACITY / 4;

/**
 * The normalised path ($uri) the parser wrote into out's URI area, as a view
 * (no copy), or null when the path span of the target is already $uri.
 */
export function normalisedPath(out: Int32Array): Buffer | null {
  const length = out[Out.UriLength];
  if (length < 0) return null;
  return Buffer.from(out.buffer, out.byteOffset + Out.Uri * 4, length);
}

/** The whole URI area of out[] as bytes, for the parser to write into. */
export function uriArea(out: Int32Array): Uint8Array {
  return new Uint8Array(out.buffer, out.byteOffset + Out.Uri * 4, URI_CAPACITY);
}

export const enum Chunk {
  Phase = 0,
  RemainHi = 1,
  RemainLo = 2,
  Done = 3,
  Aux = 4,
}

export const CHUNK_STATE_SIZE = 8;

/** Content-Length from the two uint32 halves in out[]. */
export function contentLength(out: Int32Array): number {
  return (out[Out.ContentLengthHi] >>> 0) * 4294967296 + (out[Out.ContentLengthLo] >>> 0);
}

// ---- shared dictionary (native/shdict.c; the PAL_SHDICT_* block of palisade.h) ----

export const enum ShdictStatus {
  Ok = 0,
  StoredForcibly = 1,
  NotFound = -101,
  Exists = -102,
  NotNumber = -103,
  Buffer = -104,
  Key = -105,
  TooLarge = -106,
  Handle = -107,
  Open = -108,
  BadFile = -109,
  Size = -110,
  Lock = -111,
  Arg = -112,
  TooMany = -113,
}

export const SHDICT_MAX_KEY = 65535;
export const SHDICT_MIN_CAPACITY = 32768;
export const SHDICT_MAX_CAPACITY = 2147483648;
/** Size of an entry's header in the arena; an entry takes a block of 2^n >= header + key + value bytes. */
export const SHDICT_ENTRY_HEADER = 40;

/** Open flag: unlink an existing file first. */
export const SHDICT_OPEN_FRESH = 1;

export const enum ShdictMode {
  Set = 0,
  Add = 1,
  Replace = 2,
}

export const enum ShdictValueType {
  Bytes = 1,
  Number = 2,
}

/** out[] slots of get / incr / ttl. */
export const enum ShdictOut {
  Type = 0,
  Length = 1,
  Flags = 2,
  Ttl = 3, // remaining ms, 0 = never expires
  Number = 4,
}

/** out[] slots of stats. */
export const enum ShdictStat {
  Capacity = 0,
  Used = 1,
  Items = 2,
  Evictions = 3,
  Expired = 4,
  LockRecoveries = 5,
  Resets = 6,
  MaxEntry = 7,
}

export const SHDICT_OUT_SIZE = 8;
