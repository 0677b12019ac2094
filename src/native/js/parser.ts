// Pure TypeScript mirror of native/parser.c: strict HTTP/1.x request heads,
// response heads and chunked bodies (RFC 9112). It follows the C step for
// step so that both return the same codes and write the same out[] slots;
// test/native/differential.test.ts holds them to it. Read parser.c for the
// reasoning behind each rule.
//
// Hot path: bytes are read as numbers straight from the Buffer and classified
// with a lookup table; no strings, regexes or objects are created per call.

import { Chunk, Flag, MAX_HEADERS, Method, Out, ParseError, URI_CAPACITY, uriArea } from '../layout';

// ---- byte classes (same bits as char_class in parser.c) ----
const CC_TCHAR = 1; // token character (field names, methods)
const CC_VALUE = 2; // field value byte: HTAB, SP, VCHAR, obs-text
const CC_HOST = 4; // reg-name byte we accept in a host: ALPHA DIGIT - . _ ~
const CC_HEX = 8; // HEXDIG
const CC_DIGIT = 16; // DIGIT
const CC_TARGET = 32; // request-target byte: anything but CTL, SP and DEL
const CC_PATH_MARK = 64; // '#', '%', '/', '?' and SP: where a path may need normalising, or ends

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const SLASH = 0x2f;
const QUESTION = 0x3f;
const HASH = 0x23;
const PERCENT = 0x25;
const DOT = 0x2e;
const ASTERISK = 0x2a;
const DIGIT_0 = 0x30;
const DIGIT_1 = 0x31;

const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1, as in the C
const MAX_OFFSET = 0x7fffffff; // offsets are written to int32 slots
const TWO_32 = 4294967296;
const MAX_CHUNK_SIZE_DIGITS = 16;
const MAX_CHUNK_LINE = 4096; // chunk-size + chunk-ext bytes
const MAX_TRAILER_BYTES = 16384;

function buildCharClass(): Uint8Array {
  const table = new Uint8Array(256);
  const tokenSymbols = "!#$%&'*+-.^_`|~";
  for (let b = 0; b < 256; b++) {
    const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    const digit = b >= 0x30 && b <= 0x39;
    let c = 0;
    if (alpha || digit || tokenSymbols.includes(String.fromCharCode(b))) c |= CC_TCHAR;
    if (b === HTAB || (b >= SP && b !== 0x7f)) c |= CC_VALUE;
    if (alpha || digit || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e) c |= CC_HOST;
    if (digit || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)) c |= CC_HEX;
    if (digit) c |= CC_DIGIT;
    if (b > SP && b !== 0x7f) c |= CC_TARGET;
    if (b === HASH || b === PERCENT || b === SLASH || b === QUESTION || b === SP) c |= CC_PATH_MARK;
    table[b] = c;
  }
  return table;
}

// One lookup per byte instead of range compares in every loop.
const charClass = buildCharClass();

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}

const LIT_CHUNKED = ascii('chunked');
const LIT_CLOSE = ascii('close');
const LIT_KEEP_ALIVE = ascii('keep-alive');
const LIT_UPGRADE = ascii('upgrade');
const LIT_HOST = ascii('host');
const LIT_EXPECT = ascii('expect');
const LIT_100_CONTINUE = ascii('100-continue');
const LIT_CONNECTION = ascii('connection');
const LIT_CONTENT_LENGTH = ascii('content-length');
const LIT_TRANSFER_ENCODING = ascii('transfer-encoding');
const LIT_TE = ascii('te');
const LIT_TRAILER = ascii('trailer');
const LIT_PROXY_CONNECTION = ascii('proxy-connection');
const LIT_HTTP_SCHEME = ascii('http://');
const LIT_HTTPS_SCHEME = ascii('https://');
const LIT_HTTP_SLASH = ascii('HTTP/');
const LIT_HTTP_1_DOT = ascii('HTTP/1.');

function isOws(b: number): boolean {
  return b === SP || b === HTAB;
}

/** Case-insensitive compare of buf[s, e) with a lower-case literal. */
function spanEqualsLower(buf: Buffer, s: number, e: number, lower: Uint8Array): boolean {
  const n = lower.length;
  if (e - s !== n) return false;
  for (let i = 0; i < n; i++) {
    let b = buf[s + i];
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (b !== lower[i]) return false;
  }
  return true;
}

/** Limit len so that every offset written to out[] fits an int32. */
function endOfInput(off: number, len: number): number {
  if (off >= MAX_OFFSET) return off;
  const room = MAX_OFFSET - off;
  return off + (len < room ? len : room);
}

const LIT_GET = ascii('GET');
const LIT_PUT = ascii('PUT');
const LIT_POST = ascii('POST');
const LIT_HEAD = ascii('HEAD');
const LIT_PATCH = ascii('PATCH');
const LIT_TRACE = ascii('TRACE');
const LIT_PURGE = ascii('PURGE');
const LIT_DELETE = ascii('DELETE');
const LIT_OPTIONS = ascii('OPTIONS');
const LIT_CONNECT = ascii('CONNECT');

/** Case-sensitive compare of buf[s, s + literal.length) with a literal. */
function startsWith(buf: Buffer, s: number, literal: Uint8Array): boolean {
  for (let i = 0; i < literal.length; i++) {
    if (buf[s + i] !== literal[i]) return false;
  }
  return true;
}

function methodCode(buf: Buffer, m: number, n: number): number {
  switch (n) {
    case 3:
      if (startsWith(buf, m, LIT_GET)) return Method.GET;
      if (startsWith(buf, m, LIT_PUT)) return Method.PUT;
      break;
    case 4:
      if (startsWith(buf, m, LIT_POST)) return Method.POST;
      if (startsWith(buf, m, LIT_HEAD)) return Method.HEAD;
      break;
    case 5:
      if (startsWith(buf, m, LIT_PATCH)) return Method.PATCH;
      if (startsWith(buf, m, LIT_TRACE)) return Method.TRACE;
      if (startsWith(buf, m, LIT_PURGE)) return Method.PURGE;
      break;
    case 6:
      if (startsWith(buf, m, LIT_DELETE)) return Method.DELETE;
      break;
    case 7:
      if (startsWith(buf, m, LIT_OPTIONS)) return Method.OPTIONS;
      if (startsWith(buf, m, LIT_CONNECT)) return Method.CONNECT;
      break;
    default:
      break;
  }
  return Method.Other;
}

/**
 * Validate host [ ":" port ] in buf[s, e) like valid_authority in parser.c:
 * an IPv6 literal in brackets or a reg-name of ALPHA DIGIT - . _ ~, then an
 * optional port of 1 to 5 digits. Returns the end of the host (brackets
 * kept), or -1 when invalid.
 */
function validAuthority(buf: Buffer, s: number, e: number, requirePort: boolean): number {
  let p = s;
  if (p >= e) return -1;
  if (buf[p] === 0x5b /* [ */) {
    p++;
    while (p < e && ((charClass[buf[p]] & CC_HEX) !== 0 || buf[p] === COLON || buf[p] === 0x2e)) p++;
    if (p >= e || buf[p] !== 0x5d /* ] */ || p - s < 3) return -1;
    p++;
  } else {
    while (p < e && (charClass[buf[p]] & CC_HOST) !== 0) p++;
    if (p === s) return -1;
  }
  const hostEnd = p;
  if (p === e) return requirePort ? -1 : hostEnd;
  if (buf[p] !== COLON) return -1;
  p++;
  const digits = e - p;
  if (digits < 1 || digits > 5) return -1;
  for (; p < e; p++) {
    if ((charClass[buf[p]] & CC_DIGIT) === 0) return -1;
  }
  return hostEnd;
}

/** What the field lines of one head said about framing and the connection. */
class HeadState {
  isRequest = false;
  version = 0; // minor version, 0 or 1
  headerCount = 0;
  hostCount = 0;
  hostStart = 0;
  hostEnd = 0;
  hasContentLength = false;
  contentLength = 0;
  transferEncodingCount = 0;
  chunked = false; // the (last) Transfer-Encoding ends in chunked
  connectionClose = false;
  connectionKeepAlive = false;
  connectionUpgrade = false;
  connectionOther = false;
  hopLines = false; // Flag.HopLines
  hasUpgrade = false;
  expectContinue = false;

  reset(isRequest: boolean, version: number): void {
    this.isRequest = isRequest;
    this.version = version;
    this.headerCount = 0;
    this.hostCount = 0;
    this.hostStart = 0;
    this.hostEnd = 0;
    this.hasContentLength = false;
    this.contentLength = 0;
    this.transferEncodingCount = 0;
    this.chunked = false;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.connectionUpgrade = false;
    this.connectionOther = false;
    this.hopLines = false;
    this.hasUpgrade = false;
    this.expectContinue = false;
  }
}

// One head is parsed at a time (the parser never yields), so one state object
// is reused instead of allocating per call.
const head = new HeadState();

/** Content-Length: 1*DIGIT, or a list of identical 1*DIGIT (RFC 9110 8.6). */
function onContentLength(h: HeadState, buf: Buffer, vs: number, ve: number): number {
  let i = vs;
  for (;;) {
    let comma = i;
    while (comma < ve && buf[comma] !== COMMA) comma++;
    let a = i;
    let z = comma;
    while (a < z && isOws(buf[a])) a++;
    while (z > a && isOws(buf[z - 1])) z--;
    if (a === z) return ParseError.BadContentLength;
    let value = 0;
    for (let k = a; k < z; k++) {
      if ((charClass[buf[k]] & CC_DIGIT) === 0) return ParseError.BadContentLength;
      // Exact while value <= 2^53 - 1; a rounded result is still > the limit.
      value = value * 10 + (buf[k] - DIGIT_0);
      if (value > MAX_SAFE_INTEGER) return ParseError.BadContentLength;
    }
    if (h.hasContentLength && value !== h.contentLength) return ParseError.DuplicateContentLength;
    h.hasContentLength = true;
    h.contentLength = value;
    if (comma >= ve) break;
    i = comma + 1;
  }
  if (h.transferEncodingCount > 0) return ParseError.ContentLengthAndTransferEncoding;
  return 0;
}

/** Transfer-Encoding: requests say exactly `chunked` once; responses are chunked when the last coding is. */
function onTransferEncoding(h: HeadState, buf: Buffer, vs: number, ve: number): number {
  if (h.version === 0) return ParseError.BadTransferEncoding;
  if (h.isRequest) {
    if (h.transferEncodingCount > 0) return ParseError.BadTransferEncoding;
    if (!spanEqualsLower(buf, vs, ve, LIT_CHUNKED)) return ParseError.BadTransferEncoding;
    h.chunked = true;
  } else {
    let last = ve;
    while (last > vs && buf[last - 1] !== COMMA) last--;
    while (last < ve && isOws(buf[last])) last++;
    h.chunked = spanEqualsLower(buf, last, ve, LIT_CHUNKED);
  }
  h.transferEncodingCount++;
  if (h.hasContentLength) return ParseError.ContentLengthAndTransferEncoding;
  return 0;
}

function onConnection(h: HeadState, buf: Buffer, vs: number, ve: number): void {
  let i = vs;
  for (;;) {
    let comma = i;
    while (comma < ve && buf[comma] !== COMMA) comma++;
    let a = i;
    let z = comma;
    while (a < z && isOws(buf[a])) a++;
    while (z > a && isOws(buf[z - 1])) z--;
    if (spanEqualsLower(buf, a, z, LIT_CLOSE)) {
      h.connectionClose = true;
    } else if (spanEqualsLower(buf, a, z, LIT_KEEP_ALIVE)) {
      h.connectionKeepAlive = true;
    } else if (spanEqualsLower(buf, a, z, LIT_UPGRADE)) {
      h.connectionUpgrade = true;
    } else if (a < z) {
      h.connectionOther = true;
    }
    if (comma >= ve) break;
    i = comma + 1;
  }
}

function onHost(h: HeadState, buf: Buffer, vs: number, ve: number): number {
  if (h.hostCount++ > 0) return ParseError.MissingHost;
  const hostEnd = validAuthority(buf, vs, ve, false);
  if (hostEnd < 0) return ParseError.BadRequest;
  h.hostStart = vs;
  h.hostEnd = hostEnd;
  return 0;
}

/**
 * The few field names that matter for framing or that a proxy drops, found by
 * length then name. A response whose only such line is `Connection:
 * keep-alive` can go to a keep-alive client unchanged (no Flag.HopLines).
 */
function onField(h: HeadState, buf: Buffer, ns: number, ne: number, vs: number, ve: number): number {
  switch (ne - ns) {
    case 2:
      if (spanEqualsLower(buf, ns, ne, LIT_TE)) h.hopLines = true;
      break;
    case 4:
      if (h.isRequest && spanEqualsLower(buf, ns, ne, LIT_HOST)) return onHost(h, buf, vs, ve);
      break;
    case 6:
      if (h.isRequest && spanEqualsLower(buf, ns, ne, LIT_EXPECT) && spanEqualsLower(buf, vs, ve, LIT_100_CONTINUE))
        h.expectContinue = true;
      break;
    case 7:
      if (spanEqualsLower(buf, ns, ne, LIT_UPGRADE)) {
        h.hasUpgrade = true;
        h.hopLines = true;
      } else if (spanEqualsLower(buf, ns, ne, LIT_TRAILER)) {
        h.hopLines = true;
      }
      break;
    case 10:
      if (spanEqualsLower(buf, ns, ne, LIT_CONNECTION)) {
        onConnection(h, buf, vs, ve);
        if (!spanEqualsLower(buf, vs, ve, LIT_KEEP_ALIVE)) h.hopLines = true;
      } else if (spanEqualsLower(buf, ns, ne, LIT_KEEP_ALIVE)) {
        h.hopLines = true;
      }
      break;
    case 14:
      if (spanEqualsLower(buf, ns, ne, LIT_CONTENT_LENGTH)) return onContentLength(h, buf, vs, ve);
      break;
    case 16:
      if (spanEqualsLower(buf, ns, ne, LIT_PROXY_CONNECTION)) h.hopLines = true;
      break;
    case 17:
      if (spanEqualsLower(buf, ns, ne, LIT_TRANSFER_ENCODING)) return onTransferEncoding(h, buf, vs, ve);
      break;
    default:
      break;
  }
  return 0;
}

// Where parseFields leaves the end of the head when it returns 1.
let fieldsHeadEnd = 0;

/** Field lines from p through the empty line: 1 when complete (see fieldsHeadEnd), 0 for more bytes, or an error. */
function parseFields(h: HeadState, buf: Buffer, p: number, end: number, out: Int32Array): number {
  for (;;) {
    if (p >= end) return 0;
    const b = buf[p];
    if (b === CR) {
      if (p + 1 >= end) return 0;
      if (buf[p + 1] !== LF) return ParseError.BadRequest;
      fieldsHeadEnd = p + 2;
      return 1;
    }
    if (b === LF) return ParseError.BadRequest;
    if (isOws(b)) return ParseError.ObsFold;
    if (h.headerCount === MAX_HEADERS) return ParseError.TooManyHeaders;

    const nameStart = p;
    while (p < end && (charClass[buf[p]] & CC_TCHAR) !== 0) p++;
    if (p >= end) return 0;
    if (buf[p] !== COLON || p === nameStart) return ParseError.BadHeaderName;
    const nameEnd = p++;

    while (p < end && isOws(buf[p])) p++;
    const valueStart = p;
    while (p < end && (charClass[buf[p]] & CC_VALUE) !== 0) p++;
    if (p >= end) return 0;
    if (buf[p] !== CR) return buf[p] === LF ? ParseError.BadRequest : ParseError.BadHeaderValue;
    if (p + 1 >= end) return 0;
    if (buf[p + 1] !== LF) return ParseError.BadRequest;
    let valueEnd = p;
    while (valueEnd > valueStart && isOws(buf[valueEnd - 1])) valueEnd--;
    p += 2;

    const slot = Out.Headers + 4 * h.headerCount;
    out[slot] = nameStart;
    out[slot + 1] = nameEnd;
    out[slot + 2] = valueStart;
    out[slot + 3] = valueEnd;
    h.headerCount++;

    const r = onField(h, buf, nameStart, nameEnd, valueStart, valueEnd);
    if (r < 0) return r;
  }
}

function connectionFlags(h: HeadState): number {
  let flags = 0;
  if (!h.connectionClose && (h.version === 1 || h.connectionKeepAlive)) flags |= Flag.KeepAlive;
  // HTTP/1.0 has no Upgrade (RFC 9110 7.8: ignore it there).
  if (h.version === 1 && h.connectionUpgrade && h.hasUpgrade) flags |= Flag.Upgrade;
  if (h.connectionOther) flags |= Flag.HopHeaders;
  if (h.hopLines) flags |= Flag.HopLines;
  return flags;
}

function writeContentLength(h: HeadState, out: Int32Array): void {
  const hi = Math.floor(h.contentLength / TWO_32);
  out[Out.ContentLengthHi] = hi;
  // Int32Array stores wrap like the C's (int32_t)(uint32_t) cast.
  out[Out.ContentLengthLo] = h.contentLength - hi * TWO_32;
}

// classifyTarget results (module-level so nothing is allocated per call).
let targetPathStart = 0;
let targetPathEnd = 0;
let targetAuthStart = 0;
let targetAuthEnd = 0;
/** The path holds '%', '#', "//" or "/." and so may differ from its normal form. */
let targetComplex = false;

/** Check the request-target form against the method (RFC 9112 3.2) and find the path span. */
function classifyTarget(buf: Buffer, ts: number, te: number, method: number): number {
  const n = te - ts;
  let searchQuery = true;
  targetAuthStart = 0;
  targetAuthEnd = 0;
  if (method === Method.CONNECT) {
    if (validAuthority(buf, ts, te, true) < 0) return ParseError.BadTarget;
    targetPathStart = ts;
    searchQuery = false;
  } else if (buf[ts] === SLASH) {
    targetPathStart = ts;
  } else if (n === 1 && buf[ts] === ASTERISK) {
    if (method !== Method.OPTIONS) return ParseError.BadTarget;
    targetPathStart = ts;
    searchQuery = false;
  } else {
    let a: number;
    if (n > 7 && spanEqualsLower(buf, ts, ts + 7, LIT_HTTP_SCHEME)) {
      a = ts + 7;
    } else if (n > 8 && spanEqualsLower(buf, ts, ts + 8, LIT_HTTPS_SCHEME)) {
      a = ts + 8;
    } else {
      return ParseError.BadTarget;
    }
    let slash = a;
    while (slash < te && buf[slash] !== SLASH) slash++;
    if (slash >= te) return ParseError.BadTarget;
    const hostEnd = validAuthority(buf, a, slash, false);
    if (hostEnd < 0) return ParseError.BadTarget;
    targetAuthStart = a;
    targetAuthEnd = hostEnd;
    targetPathStart = slash;
  }
  let q = targetPathStart;
  targetComplex = false;
  if (searchQuery) {
    // One class lookup per byte finds the '?' and what makes a path complex. buf[te] is the SP that
    // ended the target, and SP is marked too, so the inner loop needs no bound check.
    for (;;) {
      while ((charClass[buf[q]] & CC_PATH_MARK) === 0) q++;
      const b = buf[q];
      if (b === SLASH) {
        const next = buf[q + 1]; // q < te, so at most the SP
        if (next === SLASH || next === DOT) targetComplex = true;
      } else if (b === PERCENT || b === HASH) {
        targetComplex = true;
      } else {
        break; // '?' or the SP at te
      }
      q++;
    }
  } else {
    q = te;
  }
  targetPathEnd = q;
  return 0;
}

// $uri as nginx builds it: see normalise_path in parser.c for the rules and
// what APISIX matches and forwards.
const enum UriState {
  Usual = 0,
  Slash = 1,
  Dot = 2,
  DotDot = 3,
}

/** Back up over "/..": drop it and the segment before it, leaving u just after that segment's '/'. */
function dropDotDot(dst: Uint8Array, u: number): number {
  u -= 4;
  for (;;) {
    if (u < 0) return ParseError.BadTarget;
    if (dst[u] === SLASH) return u + 1;
    u--;
  }
}

function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const c = b | 0x20;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Writes the normal form of buf[s, e) to dst; returns its length or ParseError.BadTarget. */
function normalisePath(buf: Buffer, s: number, e: number, dst: Uint8Array): number {
  let state = UriState.Usual;
  let u = 0;
  let p = s;
  while (p < e) {
    let ch = buf[p++];
    if (ch === HASH) break;
    if (ch === PERCENT) {
      if (e - p < 2) return ParseError.BadTarget;
      const hi = hexDigit(buf[p]);
      const lo = hexDigit(buf[p + 1]);
      if (hi < 0 || lo < 0) return ParseError.BadTarget;
      p += 2;
      ch = (hi << 4) | lo;
      if (ch === 0) return ParseError.BadTarget;
      if (ch === PERCENT || ch === HASH || ch === QUESTION) {
        dst[u++] = ch;
        state = UriState.Usual;
        continue;
      }
    }
    switch (state) {
      case UriState.Usual:
        if (ch === SLASH) state = UriState.Slash;
        dst[u++] = ch;
        break;
      case UriState.Slash:
        if (ch === SLASH) break; // merge_slashes
        state = ch === DOT ? UriState.Dot : UriState.Usual;
        dst[u++] = ch;
        break;
      case UriState.Dot:
        if (ch === SLASH) {
          state = UriState.Slash;
          u--; // "/./" -> "/"
        } else {
          state = ch === DOT ? UriState.DotDot : UriState.Usual;
          dst[u++] = ch;
        }
        break;
      case UriState.DotDot:
        if (ch === SLASH) {
          state = UriState.Slash;
          u = dropDotDot(dst, u);
          if (u < 0) return u;
        } else {
          state = UriState.Usual;
          dst[u++] = ch;
        }
        break;
    }
  }
  if (state === UriState.Dot) u--; // a final "/." leaves its '/'
  if (state === UriState.DotDot) u = dropDotDot(dst, u);
  return u;
}

function parseRequestLineAndFields(buf: Buffer, off: number, len: number, out: Int32Array): number {
  for (let i = Out.Method; i <= Out.HeaderCount; i++) out[i] = 0;
  out[Out.RouteCount] = -1;
  out[Out.UriLength] = -1;
  const end = endOfInput(off, len);
  let p = off;

  // method SP
  while (p < end && (charClass[buf[p]] & CC_TCHAR) !== 0) p++;
  if (p >= end) return 0;
  if (buf[p] !== SP || p === off) {
    return buf[p] === CR || buf[p] === LF ? ParseError.BadRequest : ParseError.BadMethod;
  }
  const methodEnd = p++;
  const method = methodCode(buf, off, methodEnd - off);

  // request-target SP
  const targetStart = p;
  while (p < end && (charClass[buf[p]] & CC_TARGET) !== 0) p++;
  if (p >= end) return 0;
  if (buf[p] !== SP || p === targetStart) {
    return buf[p] === CR || buf[p] === LF ? ParseError.BadRequest : ParseError.BadTarget;
  }
  const targetEnd = p++;
  let r = classifyTarget(buf, targetStart, targetEnd, method);
  if (r < 0) return r;

  // HTTP-version CRLF, checked byte by byte so garbage fails before the line ends
  for (let i = 0; i < 10; i++, p++) {
    if (p >= end) return 0;
    const b = buf[p];
    if (i < 5) {
      if (b !== LIT_HTTP_SLASH[i]) return ParseError.BadRequest;
    } else if (i === 5 || i === 7) {
      if ((charClass[b] & CC_DIGIT) === 0) return ParseError.BadRequest;
      if (i === 7 && (buf[p - 2] !== DIGIT_1 || b > DIGIT_1)) return ParseError.BadVersion;
    } else if (i === 6) {
      if (b !== 0x2e) return ParseError.BadRequest;
    } else if (i === 8) {
      if (b !== CR) return ParseError.BadRequest;
    } else if (b !== LF) {
      return ParseError.BadRequest;
    }
  }
  const version = buf[p - 3] - DIGIT_0;

  out[Out.Method] = method;
  out[Out.MethodEnd] = methodEnd;
  out[Out.TargetStart] = targetPathStart;
  out[Out.TargetEnd] = targetEnd;
  out[Out.PathEnd] = targetPathEnd;
  out[Out.Version] = version;
  if (targetComplex) {
    // Rejected here, at the end of the request line, as nginx does before reading any header.
    if (targetPathEnd - targetPathStart > URI_CAPACITY) return ParseError.UriTooLong;
    const uriLength = normalisePath(buf, targetPathStart, targetPathEnd, uriArea(out));
    if (uriLength < 0) return uriLength;
    out[Out.UriLength] = uriLength;
  }
  const authStart = targetAuthStart;
  const authEnd = targetAuthEnd;

  const h = head;
  h.reset(true, version);
  r = parseFields(h, buf, p, end, out);
  if (r <= 0) return r;
  if (version === 1 && h.hostCount === 0) return ParseError.MissingHost;

  let flags = connectionFlags(h);
  if (h.chunked) flags |= Flag.Chunked;
  if (h.hasContentLength) {
    flags |= Flag.ContentLength;
    writeContentLength(h, out);
  }
  // RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
  if (h.expectContinue && version === 1) flags |= Flag.ExpectContinue;
  if (h.hostCount > 0) flags |= Flag.HasHost;
  if (authEnd > 0) {
    out[Out.HostStart] = authStart;
    out[Out.HostEnd] = authEnd;
  } else if (h.hostCount > 0) {
    out[Out.HostStart] = h.hostStart;
    out[Out.HostEnd] = h.hostEnd;
  }
  out[Out.Flags] = flags;
  out[Out.HeaderCount] = h.headerCount;
  return fieldsHeadEnd - off;
}

/**
 * Parse the request head in buf[off, off+len) into out (no routing; the js
 * backend routes separately). Returns the head length, 0 when incomplete, or
 * a negative ParseError; out[Out.Status] gets the same value and
 * out[Out.RouteCount] is -1.
 */
export function parseRequestHead(buf: Buffer, off: number, len: number, out: Int32Array): number {
  const r = parseRequestLineAndFields(buf, off, len, out);
  out[Out.Status] = r;
  return r;
}

function parseStatusLineAndFields(buf: Buffer, off: number, len: number, reqMethod: number, out: Int32Array): number {
  for (let i = Out.Method; i <= Out.HeaderCount; i++) out[i] = 0;
  const end = endOfInput(off, len);
  let p = off;

  // "HTTP/1." DIGIT SP 3DIGIT, each byte checked as it arrives
  let status = 0;
  for (let i = 0; i < 12; i++, p++) {
    if (p >= end) return 0;
    const b = buf[p];
    if (i < 7) {
      if (b !== LIT_HTTP_1_DOT[i]) return ParseError.BadStatus;
    } else if (i === 7) {
      if (b !== DIGIT_0 && b !== DIGIT_1) return ParseError.BadStatus;
    } else if (i === 8) {
      if (b !== SP) return ParseError.BadStatus;
    } else {
      if ((charClass[b] & CC_DIGIT) === 0) return ParseError.BadStatus;
      status = status * 10 + (b - DIGIT_0);
      if (i === 9 && (b < DIGIT_1 || b > 0x35)) return ParseError.BadStatus;
    }
  }
  const version = buf[off + 7] - DIGIT_0;

  // [ SP reason ] CRLF; `HTTP/1.1 200\r\n` is accepted too
  if (p >= end) return 0;
  let reasonStart: number;
  if (buf[p] === SP) {
    reasonStart = ++p;
    while (p < end && (charClass[buf[p]] & CC_VALUE) !== 0) p++;
    if (p >= end) return 0;
  } else {
    reasonStart = p;
  }
  if (buf[p] !== CR) return ParseError.BadStatus;
  if (p + 1 >= end) return 0;
  if (buf[p + 1] !== LF) return ParseError.BadStatus;
  const reasonEnd = p;
  p += 2;

  out[Out.Method] = status;
  out[Out.TargetStart] = reasonStart;
  out[Out.TargetEnd] = reasonEnd;
  out[Out.Version] = version;

  const h = head;
  h.reset(false, version);
  const r = parseFields(h, buf, p, end, out);
  if (r <= 0) return r;

  let flags = connectionFlags(h);
  if (h.hasContentLength) writeContentLength(h, out);
  if (reqMethod === Method.HEAD || status < 200 || status === 204 || status === 304) {
    flags |= Flag.NoBody;
  } else if (h.transferEncodingCount > 0) {
    flags |= h.chunked ? Flag.Chunked : Flag.ReadToClose;
  } else if (h.hasContentLength) {
    flags |= Flag.ContentLength;
  } else {
    flags |= Flag.ReadToClose;
  }
  if ((flags & Flag.ReadToClose) !== 0) flags &= ~Flag.KeepAlive;
  out[Out.Flags] = flags;
  out[Out.HeaderCount] = h.headerCount;
  return fieldsHeadEnd - off;
}

/**
 * Parse a response head answering a request with method code `reqMethod`.
 * out[Out.Method] gets the status code and the target span the reason.
 */
export function parseResponse(buf: Buffer, off: number, len: number, reqMethod: number, out: Int32Array): number {
  const r = parseStatusLineAndFields(buf, off, len, reqMethod, out);
  out[Out.Status] = r;
  return r;
}

// ---- chunked body scanner (phases as enum chunk_phase in parser.c) ----
const CP_SIZE_START = 0; // first hex digit of a chunk-size
const CP_SIZE = 1; // more hex digits, ';' or CR
const CP_EXT = 2; // chunk-ext bytes up to CR
const CP_SIZE_LF = 3; // LF ending the size line
const CP_DATA = 4; // chunk data, remain bytes left
const CP_DATA_CR = 5; // CR after the data
const CP_DATA_LF = 6; // LF after the data
const CP_TRAILER_START = 7; // start of a trailer line, or CR of the final empty line
const CP_TRAILER_NAME = 8; // field-name up to ':'
const CP_TRAILER_VALUE = 9; // field-value up to CR
const CP_TRAILER_LF = 10; // LF ending a trailer line
const CP_FINAL_LF = 11; // LF ending the message
const CP_FAILED = 12; // an error was returned; every later call fails too

function hexValue(b: number): number {
  if (b <= 0x39) return b - DIGIT_0;
  return (b | 0x20) - 0x61 + 10;
}

/**
 * Scan chunked-body bytes buf[off, off+len) with `state` (zeroed at message
 * start). Returns bytes consumed, stopping right after the end of the message
 * (state[Chunk.Done] = 1) so pipelined bytes stay unconsumed, or a negative
 * ParseError. Validates only: the bytes are forwarded as they are.
 */
export function chunkedScan(buf: Buffer, off: number, len: number, state: Int32Array): number {
  if (state[Chunk.Done] !== 0) return 0;
  let phase = state[Chunk.Phase];
  if (phase < CP_SIZE_START || phase >= CP_FAILED) return ParseError.BadChunk;
  let remain = (state[Chunk.RemainHi] >>> 0) * TWO_32 + (state[Chunk.RemainLo] >>> 0);
  let aux = state[Chunk.Aux] >>> 0;
  let p = off;
  const end = off + (len < MAX_OFFSET ? len : MAX_OFFSET);
  let result = 0;

  while (p < end && result === 0) {
    const b = buf[p];
    switch (phase) {
      case CP_SIZE_START:
        if ((charClass[b] & CC_HEX) === 0) {
          result = ParseError.BadChunk;
          break;
        }
        remain = hexValue(b);
        aux = 1;
        phase = CP_SIZE;
        p++;
        break;
      case CP_SIZE:
        if ((charClass[b] & CC_HEX) !== 0) {
          // Compared only: a rounded result above 2^53 is still above the limit.
          const next = remain * 16 + hexValue(b);
          if (aux >= MAX_CHUNK_SIZE_DIGITS || next > MAX_SAFE_INTEGER) {
            result = ParseError.ChunkTooBig;
            break;
          }
          remain = next;
          aux++;
        } else if (b === SEMICOLON) {
          aux++;
          phase = CP_EXT;
        } else if (b === CR) {
          phase = CP_SIZE_LF;
        } else {
          result = ParseError.BadChunk;
          break;
        }
        p++;
        break;
      case CP_EXT:
        if (b === CR) {
          phase = CP_SIZE_LF;
        } else if ((charClass[b] & CC_VALUE) === 0 || ++aux > MAX_CHUNK_LINE) {
          result = ParseError.BadChunk;
          break;
        }
        p++;
        break;
      case CP_SIZE_LF:
        if (b !== LF) {
          result = ParseError.BadChunk;
          break;
        }
        aux = 0;
        phase = remain === 0 ? CP_TRAILER_START : CP_DATA;
        p++;
        break;
      case CP_DATA: {
        // Skip the data in one step: it is forwarded, never looked at.
        const available = end - p;
        const take = remain < available ? remain : available;
        p += take;
        remain -= take;
        if (remain === 0) phase = CP_DATA_CR;
        break;
      }
      case CP_DATA_CR:
        if (b !== CR) {
          result = ParseError.BadChunk;
          break;
        }
        phase = CP_DATA_LF;
        p++;
        break;
      case CP_DATA_LF:
        if (b !== LF) {
          result = ParseError.BadChunk;
          break;
        }
        phase = CP_SIZE_START;
        p++;
        break;
      default: // trailer section
        if (++aux > MAX_TRAILER_BYTES) {
          result = ParseError.BadChunk;
          break;
        }
        if (phase === CP_TRAILER_START) {
          if (b === CR) {
            phase = CP_FINAL_LF;
          } else if ((charClass[b] & CC_TCHAR) !== 0) {
            phase = CP_TRAILER_NAME;
          } else {
            result = ParseError.BadChunk;
            break;
          }
        } else if (phase === CP_TRAILER_NAME) {
          if (b === COLON) {
            phase = CP_TRAILER_VALUE;
          } else if ((charClass[b] & CC_TCHAR) === 0) {
            result = ParseError.BadChunk;
            break;
          }
        } else if (phase === CP_TRAILER_VALUE) {
          if (b === CR) {
            phase = CP_TRAILER_LF;
          } else if ((charClass[b] & CC_VALUE) === 0) {
            result = ParseError.BadChunk;
            break;
          }
        } else if (phase === CP_TRAILER_LF) {
          if (b !== LF) {
            result = ParseError.BadChunk;
            break;
          }
          phase = CP_TRAILER_START;
        } else {
          // CP_FINAL_LF
          if (b !== LF) {
            result = ParseError.BadChunk;
            break;
          }
          state[Chunk.Done] = 1;
          result = 1; // stop right after the message, leaving pipelined bytes
        }
        p++;
        break;
    }
  }

  if (result < 0) phase = CP_FAILED;
  const hi = Math.floor(remain / TWO_32);
  state[Chunk.Phase] = phase;
  state[Chunk.RemainHi] = hi;
  state[Chunk.RemainLo] = remain - hi * TWO_32;
  state[Chunk.Aux] = aux;
  return result < 0 ? result : p - off;
}
