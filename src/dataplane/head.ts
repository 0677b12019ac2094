// Building heads from the bytes that arrived: the upstream request head is the
// client's head minus hop-by-hop and forwarding headers plus fresh ones; a
// response head is passed through untouched unless its hop-by-hop headers or
// the client's keep-alive state need rewriting. Kept lines are copied byte for
// byte; nothing is re-encoded.

import { Flag, MAX_HEADERS, Out } from '../native/layout';
import type { BalancerNode } from './balancer';
import { lengthBit, type HeaderName } from './header-name';
import type { RequestState } from './request';
import { PassHost, type CompiledUpstream } from './route-table';
import { equalsLowerCase } from './vars';

const enum Role {
  Keep = 0,
  Drop = 1,
  Host = 2,
  ForwardedFor = 3,
  Connection = 4,
  Upgrade = 5,
}

/** What happens to a header of the client's request, by name (switch on length first: most names miss there). */
function requestHeaderRole(buf: Buffer, start: number, end: number): Role {
  switch (end - start) {
    case 2:
      return equalsLowerCase(buf, start, end, 'te') ? Role.Drop : Role.Keep;
    case 4:
      return equalsLowerCase(buf, start, end, 'host') ? Role.Host : Role.Keep;
    case 6:
      return equalsLowerCase(buf, start, end, 'expect') ? Role.Drop : Role.Keep;
    case 7:
      if (equalsLowerCase(buf, start, end, 'upgrade')) return Role.Upgrade;
      return equalsLowerCase(buf, start, end, 'trailer') ? Role.Drop : Role.Keep;
    case 9:
      return equalsLowerCase(buf, start, end, 'x-real-ip') ? Role.Drop : Role.Keep;
    case 10:
      if (equalsLowerCase(buf, start, end, 'connection')) return Role.Connection;
      return equalsLowerCase(buf, start, end, 'keep-alive') ? Role.Drop : Role.Keep;
    case 15:
      return equalsLowerCase(buf, start, end, 'x-forwarded-for') ? Role.ForwardedFor : Role.Keep;
    case 16:
      return equalsLowerCase(buf, start, end, 'proxy-connection') ||
        equalsLowerCase(buf, start, end, 'x-forwarded-host')
        ? Role.Drop
        : Role.Keep;
    case 17:
      return equalsLowerCase(buf, start, end, 'x-forwarded-proto') ? Role.Drop : Role.Keep;
  }
  return Role.Keep;
}

/** Hop-by-hop headers of a response (Upgrade only counts outside a 101). */
function isResponseHopHeader(buf: Buffer, start: number, end: number, switching: boolean): boolean {
  switch (end - start) {
    case 2:
      return equalsLowerCase(buf, start, end, 'te');
    case 7:
      return equalsLowerCase(buf, start, end, 'trailer') || (!switching && equalsLowerCase(buf, start, end, 'upgrade'));
    case 10:
      return equalsLowerCase(buf, start, end, 'connection') || equalsLowerCase(buf, start, end, 'keep-alive');
    case 16:
      return equalsLowerCase(buf, start, end, 'proxy-connection');
  }
  return false;
}

/** Length of the blank line that ends a head at `headEnd` (CRLF or a bare LF). */
function terminatorLength(buf: Buffer, headEnd: number): number {
  return headEnd >= 2 && buf[headEnd - 2] === 13 ? 2 : 1;
}

/** End of header line i (its line break included). */
function lineEnd(buf: Buffer, out: Int32Array, i: number, count: number, headEnd: number): number {
  return i + 1 < count ? out[Out.Headers + 4 * (i + 1)] : headEnd - terminatorLength(buf, headEnd);
}

/** Lower-case tokens of every Connection header other than close/keep-alive/upgrade. */
function connectionTokens(buf: Buffer, out: Int32Array): string[] {
  const tokens: string[] = [];
  const count = out[Out.HeaderCount];
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    if (!equalsLowerCase(buf, out[slot], out[slot + 1], 'connection')) continue;
    for (const raw of buf.toString('latin1', out[slot + 2], out[slot + 3]).split(',')) {
      const token = raw.trim().toLowerCase();
      if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') tokens.push(token);
    }
  }
  return tokens;
}

function namedIn(buf: Buffer, start: number, end: number, tokens: readonly string[]): boolean {
  for (let i = 0; i < tokens.length; i++) if (equalsLowerCase(buf, start, end, tokens[i])) return true;
  return false;
}

function hostHeader(node: BalancerNode): string {
  return node.port === 80 ? node.host : `${node.host}:${node.port}`;
}

// Which request header lines are kept, decided in the first pass of
// buildUpstreamHead and read in the second; module-level because building is
// synchronous, so one array serves every request without allocating.
const keptLines = new Uint8Array(MAX_HEADERS);

const VERSION_11 = Buffer.from(' HTTP/1.1\r\n', 'latin1');
const VERSION_10 = Buffer.from(' HTTP/1.0\r\n', 'latin1');
const FORWARDED_HOST = Buffer.from('X-Forwarded-Host: ', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const END_UPGRADE = Buffer.from('Connection: upgrade\r\n\r\n', 'latin1');
const END_KEEP_ALIVE = Buffer.from('Connection: keep-alive\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

// A one-entry cache of the X-Real-IP / X-Forwarded-For / -Proto lines: most
// requests through a gateway come from few addresses (a load balancer, a
// keep-alive client), so the common case copies bytes instead of building
// and encoding a string per request.
let cachedClientIp = '';
let cachedForwarded = EMPTY;

function forwardedLines(clientIp: string, forwardedFor: string): Buffer {
  if (forwardedFor !== '') {
    return Buffer.from(
      `X-Real-IP: ${clientIp}\r\nX-Forwarded-For: ${forwardedFor}, ${clientIp}\r\nX-Forwarded-Proto: http\r\n`,
      'latin1',
    );
  }
  if (clientIp !== cachedClientIp) {
    cachedForwarded = Buffer.from(
      `X-Real-IP: ${clientIp}\r\nX-Forwarded-For: ${clientIp}\r\nX-Forwarded-Proto: http\r\n`,
      'latin1',
    );
    cachedClientIp = clientIp;
  }
  return cachedForwarded;
}

/** How a plugin changed a header: Set drops the lines of its name and adds its value (none when null); Add adds one. */
export const enum HeaderEdit {
  Set = 0,
  Add = 1,
}

/**
 * A header value as heads are written: latin1 text, one byte per code unit (checked
 * and converted in plugins/context.ts), or a non-negative safe integer, written as
 * decimal digits without a string in between.
 */
export type HeaderValue = string | number;

/** Flat triples: HeaderEdit, HeaderName, value (null: nothing to add). */
export type HeaderEditEntries = ReadonlyArray<HeaderEdit | HeaderName | HeaderValue | null>;

/** Header edits in the form head building applies them. */
export interface HeaderEdits {
  /**
   * Triples in which no Set comes after another edit of its name, so every
   * non-null value is a line to add, in order, and every Set's name is a name
   * whose existing lines are left out.
   */
  readonly entries: HeaderEditEntries;
  /** The OR of the Set names' lengthBit: a line whose length bit is clear is kept without comparing names. */
  readonly droppedLengths: number;
}

/** Whether the header line named buf[start, end) is one that `edits` leave out. */
function isDropped(buf: Buffer, start: number, end: number, edits: HeaderEdits): boolean {
  if ((edits.droppedLengths & lengthBit(end - start)) === 0) return false;
  const entries = edits.entries;
  for (let i = 0; i < entries.length; i += 3) {
    if (entries[i] !== HeaderEdit.Set) continue;
    if (equalsLowerCase(buf, start, end, (entries[i + 1] as HeaderName).lower)) return true;
  }
  return false;
}

// Integer values up to INT32_MAX are formatted with int32 arithmetic, which the JIT
// turns into multiplications; larger ones (rare: counts above two billion) go
// through their string form.
const INT32_MAX = 0x7fffffff;

/** How many bytes a value takes on the wire. */
function valueLength(value: HeaderValue): number {
  if (typeof value === 'string') return value.length;
  if (value > INT32_MAX) return String(value).length;
  if (value < 100_000) return value < 100 ? (value < 10 ? 1 : 2) : value < 1_000 ? 3 : value < 10_000 ? 4 : 5;
  return value < 10_000_000 ? (value < 1_000_000 ? 6 : 7) : value < 100_000_000 ? 8 : value < 1_000_000_000 ? 9 : 10;
}

/** Bytes the added lines take. */
function addedLength(edits: HeaderEdits | null): number {
  if (edits === null) return 0;
  const entries = edits.entries;
  let length = 0;
  for (let i = 0; i < entries.length; i += 3) {
    const value = entries[i + 2] as HeaderValue | null;
    if (value === null) continue;
    length += (entries[i + 1] as HeaderName).prefix.length + valueLength(value) + 2;
  }
  return length;
}

// Heads are built from pieces of a few dozen bytes, and what a piece costs was
// counted (bench:instructions and callgrind on Node 20): a JS loop takes about 25
// instructions a byte; TypedArray#set about 250 for a whole buffer, about 650 with
// the subarray view a part needs; Buffer#copy and Buffer#write more than that.
const SMALL_COPY = 24;
const SMALL_WHOLE_COPY = 10;
const SMALL_TEXT = 16;

/** source[start, end) into target at pos; returns the new position. */
export function copyBytes(target: Buffer, pos: number, source: Buffer, start: number, end: number): number {
  const length = end - start;
  if (length > SMALL_WHOLE_COPY && start === 0 && end === source.length) {
    target.set(source, pos);
    return pos + length;
  }
  if (length > SMALL_COPY) {
    target.set(source.subarray(start, end), pos);
    return pos + length;
  }
  for (let i = start; i < end; i++) target[pos++] = source[i];
  return pos;
}

/** Latin1 `text` into target at pos; returns the new position. */
function writeLatin1(target: Buffer, pos: number, text: string): number {
  if (text.length > SMALL_TEXT) return pos + target.write(text, pos, 'latin1');
  for (let i = 0; i < text.length; i++) target[pos++] = text.charCodeAt(i);
  return pos;
}

/** A non-negative integer's decimal digits into target at pos; returns the new position. */
function writeDecimal(target: Buffer, pos: number, value: number): number {
  if (value > INT32_MAX) return writeLatin1(target, pos, String(value));
  const end = pos + valueLength(value);
  let at = end;
  let rest = value | 0;
  do {
    const next = (rest / 10) | 0;
    target[--at] = 0x30 + rest - next * 10;
    rest = next;
  } while (rest !== 0);
  return end;
}

/** The added lines of `edits` into target at pos; returns the new position. */
function writeAdded(target: Buffer, pos: number, edits: HeaderEdits): number {
  const entries = edits.entries;
  for (let i = 0; i < entries.length; i += 3) {
    const value = entries[i + 2] as HeaderValue | null;
    if (value === null) continue;
    const name = entries[i + 1] as HeaderName;
    if (value !== name.lastValue) {
      name.lastValue = value;
      name.lastLine = null;
      pos = writeLine(target, pos, name.prefix, value);
    } else if (name.lastLine !== null) {
      pos = copyBytes(target, pos, name.lastLine, 0, name.lastLine.length);
    } else {
      // The same value twice in a row: keep its line for the next time.
      const start = pos;
      pos = writeLine(target, pos, name.prefix, value);
      name.lastLine = Buffer.from(target.subarray(start, pos));
    }
  }
  return pos;
}

/** "Name: value\r\n" into target at pos; returns the new position. */
function writeLine(target: Buffer, pos: number, prefix: Buffer, value: HeaderValue): number {
  pos = copyBytes(target, pos, prefix, 0, prefix.length);
  pos = typeof value === 'number' ? writeDecimal(target, pos, value) : writeLatin1(target, pos, value);
  target[pos++] = 0x0d;
  target[pos++] = 0x0a;
  return pos;
}

/** What plugins changed in the request (src/plugins/context.ts), applied while the upstream head is built. */
export interface RequestEdits extends HeaderEdits {
  readonly method: string | null;
  /** New path and query for the request line. */
  readonly target: string | null;
  /** Host header value sent upstream, over pass_host. */
  readonly host: string | null;
  /** The client address for X-Real-IP / X-Forwarded-For (real-ip's), over the socket's. */
  readonly clientAddress: string | null;
}

/**
 * The head to send upstream: HTTP/1.1 with keep-alive (HTTP/1.0 for a 1.0
 * client, or `Connection: upgrade` when upgrading), Host per pass_host, fresh
 * X-Real-IP/X-Forwarded-*. Built from byte copies of the client's head, with
 * plugins' `edits` applied when there are any.
 */
export function buildUpstreamHead(
  req: RequestState,
  upstream: CompiledUpstream,
  node: BalancerNode,
  upgrade: boolean,
  edits: RequestEdits | null = null,
): Buffer {
  const buf = req.head;
  const out = req.out;
  const count = out[Out.HeaderCount];
  const hopTokens = (req.flags & Flag.HopHeaders) !== 0 ? connectionTokens(buf, out) : null;

  const hostOverride = edits === null ? null : edits.host;

  // First pass: decide each line, measure what is kept.
  let keptBytes = 0;
  let forwardedFor = '';
  let hostStart = 0;
  let hostEnd = 0;
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    const nameStart = out[slot];
    const nameEnd = out[slot + 1];
    const role = requestHeaderRole(buf, nameStart, nameEnd);
    let keep = role === Role.Keep;
    if (role === Role.Host) {
      hostStart = out[slot + 2];
      hostEnd = out[slot + 3];
      keep = upstream.passHost === PassHost.Pass && hostOverride === null;
    } else if (role === Role.ForwardedFor) {
      const value = buf.toString('latin1', out[slot + 2], out[slot + 3]);
      forwardedFor = forwardedFor === '' ? value : `${forwardedFor}, ${value}`;
    } else if (role === Role.Upgrade) {
      keep = upgrade;
    } else if (keep && hopTokens !== null && namedIn(buf, nameStart, nameEnd, hopTokens)) {
      keep = false;
    }
    if (keep && edits !== null && isDropped(buf, nameStart, nameEnd, edits)) keep = false;
    keptLines[i] = keep ? 1 : 0;
    if (keep) keptBytes += lineEnd(buf, out, i, count, req.headEnd) - nameStart;
  }

  // An HTTP/1.0 client cannot read a chunked body, so its request goes upstream as
  // HTTP/1.0 too (as nginx proxies by default): the answer is then length- or
  // close-delimited. Keep-alive to the upstream is asked for explicitly.
  const http10 = req.version === 0;
  const version = http10 ? VERSION_10 : VERSION_11;
  const hasClientHost = hostEnd > hostStart;
  let hostLine = EMPTY;
  if (hostOverride !== null) {
    hostLine = Buffer.from(`Host: ${hostOverride}\r\n`, 'latin1');
  } else if (upstream.passHost === PassHost.Node || (upstream.passHost === PassHost.Pass && !hasClientHost)) {
    hostLine = Buffer.from(`Host: ${hostHeader(node)}\r\n`, 'latin1');
  } else if (upstream.passHost === PassHost.Rewrite) {
    hostLine = Buffer.from(`Host: ${upstream.upstreamHost}\r\n`, 'latin1');
  }
  const clientAddress = edits === null || edits.clientAddress === null ? req.client.remoteAddress : edits.clientAddress;
  const forwarded = forwardedLines(clientAddress, forwardedFor);
  const forwardedHostBytes = hasClientHost ? FORWARDED_HOST.length + (hostEnd - hostStart) + CRLF.length : 0;
  const end = upgrade ? END_UPGRADE : http10 ? END_KEEP_ALIVE : CRLF;

  const lineStart = req.headStart;
  const targetEnd = out[Out.TargetEnd];
  const requestLine = edits === null ? null : editedRequestLine(req, edits);
  const addedBytes = addedLength(edits);
  const size =
    (requestLine === null ? targetEnd - lineStart : requestLine.length) +
    version.length +
    hostLine.length +
    keptBytes +
    addedBytes +
    forwarded.length +
    forwardedHostBytes +
    end.length;
  const head = Buffer.allocUnsafe(size);
  // The client's bytes go out in runs: when its request line is kept as it is, the
  // line and the kept header lines after it are usually one copy.
  let pos = 0;
  let runStart = -1;
  if (requestLine === null && hostLine.length === 0 && endsWith(buf, targetEnd, version)) {
    runStart = lineStart;
  } else {
    pos =
      requestLine === null
        ? copyBytes(head, pos, buf, lineStart, targetEnd)
        : copyBytes(head, pos, requestLine, 0, requestLine.length);
    pos = copyBytes(head, pos, version, 0, version.length);
    pos = copyBytes(head, pos, hostLine, 0, hostLine.length);
  }
  for (let i = 0; i < count; i++) {
    const start = out[Out.Headers + 4 * i];
    if (keptLines[i] === 1) {
      if (runStart < 0) runStart = start;
    } else if (runStart >= 0) {
      pos = copyBytes(head, pos, buf, runStart, start);
      runStart = -1;
    }
  }
  if (runStart >= 0) pos = copyBytes(head, pos, buf, runStart, req.headEnd - terminatorLength(buf, req.headEnd));
  if (addedBytes > 0) pos = writeAdded(head, pos, edits!);
  pos = copyBytes(head, pos, forwarded, 0, forwarded.length);
  if (hasClientHost) {
    pos = copyBytes(head, pos, FORWARDED_HOST, 0, FORWARDED_HOST.length);
    pos = copyBytes(head, pos, buf, hostStart, hostEnd);
    head[pos++] = 0x0d;
    head[pos++] = 0x0a;
  }
  copyBytes(head, pos, end, 0, end.length);
  return head;
}

/** Whether the client's request line ends, from `at`, with exactly `version` (" HTTP/1.x\r\n"). */
function endsWith(buf: Buffer, at: number, version: Buffer): boolean {
  if (at + version.length > buf.length) return false;
  for (let i = 0; i < version.length; i++) if (buf[at + i] !== version[i]) return false;
  return true;
}

/** "METHOD target" with a plugin's method or target in place of the client's; null when neither changed. */
function editedRequestLine(req: RequestState, edits: RequestEdits): Buffer | null {
  if (edits.method === null && edits.target === null) return null;
  const buf = req.head;
  const out = req.out;
  const method = edits.method ?? buf.toString('latin1', req.headStart, out[Out.MethodEnd]);
  const target = edits.target ?? buf.toString('latin1', out[Out.TargetStart], out[Out.TargetEnd]);
  return Buffer.from(`${method} ${target}`, 'latin1');
}

/**
 * Whether a response head can go to an HTTP/1.1 keep-alive client unchanged: no
 * hop-by-hop header, except a `Connection: keep-alive`, which already says what
 * we mean (nginx and most servers send it on every keep-alive response), and
 * no header that a plugin's `edits` leave out.
 */
export function responsePassesThrough(buf: Buffer, out: Int32Array, edits: HeaderEdits | null = null): boolean {
  // The parser flags every hop-by-hop line but a plain `Connection: keep-alive`.
  if ((out[Out.Flags] & Flag.HopLines) !== 0) return false;
  if (edits === null || edits.droppedLengths === 0) return true;
  const count = out[Out.HeaderCount];
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    if (isDropped(buf, out[slot], out[slot + 1], edits)) return false;
  }
  return true;
}

/**
 * The response head for the client with hop-by-hop headers (and any header
 * named in Connection) removed and our own Connection header added; with
 * `edits`, plugins' header changes applied.
 */
export function rewriteResponseHead(
  buf: Buffer,
  start: number,
  headEnd: number,
  out: Int32Array,
  keepAlive: boolean,
  edits: HeaderEdits | null = null,
): Buffer {
  const head = Buffer.allocUnsafe(responseHeadBound(start, headEnd, edits));
  return head.subarray(0, writeResponseHead(head, buf, start, headEnd, out, keepAlive, edits));
}

/** Where a parsed head's first line ends (after its line break). */
export function statusLineEnd(buf: Buffer, out: Int32Array, headEnd: number): number {
  return out[Out.HeaderCount] > 0 ? out[Out.Headers] : headEnd - terminatorLength(buf, headEnd);
}

/**
 * A response head that passes through (responsePassesThrough with the edits),
 * with the edits' added lines written in place right after the status line.
 * The status line buf[start, statusEnd) moves left by the added lines' length
 * into the free bytes before `start`; returns where the head now starts, or -1
 * when fewer than that many bytes are free.
 */
export function insertAfterStatusLine(buf: Buffer, start: number, statusEnd: number, edits: HeaderEdits): number {
  const to = start - addedLength(edits);
  if (to < 0) return -1;
  // copyWithin moves within one buffer (about 230 instructions for a status line, a JS loop about 430).
  buf.copyWithin(to, start, statusEnd);
  writeAdded(buf, to + (statusEnd - start), edits);
  return to;
}

/** At most how many bytes rewriteResponseHead writes: the head, the added lines, and the longer Connection ending. */
export function responseHeadBound(start: number, headEnd: number, edits: HeaderEdits | null): number {
  return headEnd - start + CONNECTION_KEEP_ALIVE.length + addedLength(edits);
}

const CONNECTION_KEEP_ALIVE = Buffer.from('Connection: keep-alive\r\n\r\n', 'latin1');
const CONNECTION_CLOSE = Buffer.from('Connection: close\r\n\r\n', 'latin1');

/** rewriteResponseHead into `target` (at least responseHeadBound bytes); returns the length written. */
export function writeResponseHead(
  target: Buffer,
  buf: Buffer,
  start: number,
  headEnd: number,
  out: Int32Array,
  keepAlive: boolean,
  edits: HeaderEdits | null,
): number {
  const count = out[Out.HeaderCount];
  const hopTokens = (out[Out.Flags] & Flag.HopHeaders) !== 0 ? connectionTokens(buf, out) : null;
  const linesEnd = headEnd - terminatorLength(buf, headEnd);
  // Kept lines are copied in runs: one copy per gap left by a removed header, not one per line.
  let pos = 0;
  let runStart = start;
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    const nameStart = out[slot];
    const nameEnd = out[slot + 1];
    const removed =
      isResponseHopHeader(buf, nameStart, nameEnd, false) ||
      (hopTokens !== null && namedIn(buf, nameStart, nameEnd, hopTokens)) ||
      (edits !== null && isDropped(buf, nameStart, nameEnd, edits));
    if (!removed) continue;
    if (nameStart > runStart) pos = copyBytes(target, pos, buf, runStart, nameStart);
    runStart = lineEnd(buf, out, i, count, headEnd);
  }
  if (linesEnd > runStart) pos = copyBytes(target, pos, buf, runStart, linesEnd);
  if (edits !== null) pos = writeAdded(target, pos, edits);
  const connection = keepAlive ? CONNECTION_KEEP_ALIVE : CONNECTION_CLOSE;
  return copyBytes(target, pos, connection, 0, connection.length);
}

/**
 * Response headers as plugins edit them (header_filter, exits): names keep
 * the case they came with, lookups ignore it. Only requests whose plugins
 * touch the response build one.
 */
export class HeaderList {
  readonly names: string[] = [];
  readonly values: string[] = [];

  /** Every value of `name` joined with ", ", or undefined. */
  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    let value: string | undefined;
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i].toLowerCase() !== lower) continue;
      value = value === undefined ? this.values[i] : `${value}, ${this.values[i]}`;
    }
    return value;
  }

  /** Replace every `name` header with one holding `value`; null removes them. */
  set(name: string, value: string | null): void {
    this.remove(name);
    if (value !== null) this.add(name, value);
  }

  add(name: string, value: string): void {
    this.names.push(name);
    this.values.push(value);
  }

  remove(name: string): void {
    const lower = name.toLowerCase();
    for (let i = this.names.length - 1; i >= 0; i--) {
      if (this.names[i].toLowerCase() !== lower) continue;
      this.names.splice(i, 1);
      this.values.splice(i, 1);
    }
  }
}

/**
 * The headers of a parsed response head as an editable list, hop-by-hop ones
 * left out. Content-Length and Transfer-Encoding stay: they describe the body
 * while it streams; a body sent whole gets a length of its own.
 */
export function responseHeaderList(buf: Buffer, out: Int32Array): HeaderList {
  const list = new HeaderList();
  const count = out[Out.HeaderCount];
  const hopTokens = (out[Out.Flags] & Flag.HopHeaders) !== 0 ? connectionTokens(buf, out) : null;
  for (let i = 0; i < count; i++) {
    const slot = Out.Headers + 4 * i;
    const nameStart = out[slot];
    const nameEnd = out[slot + 1];
    if (isResponseHopHeader(buf, nameStart, nameEnd, false)) continue;
    if (hopTokens !== null && namedIn(buf, nameStart, nameEnd, hopTokens)) continue;
    list.add(buf.toString('latin1', nameStart, nameEnd), buf.toString('latin1', out[slot + 2], out[slot + 3]));
  }
  return list;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  206: 'Partial Content',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

/** nginx's reason phrase for a status. */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? (status < 300 ? 'OK' : 'Unknown');
}

/**
 * A response head for the client from an edited header list: our own
 * Connection header, and Content-Length when `contentLength` >= 0 (a body sent
 * whole). `reason` is the upstream's phrase when the status did not change.
 */
export function serializeResponseHead(
  status: number,
  reason: string | null,
  headers: HeaderList,
  contentLength: number,
  keepAlive: boolean,
): Buffer {
  let text = `HTTP/1.1 ${status} ${reason ?? statusText(status)}\r\n`;
  for (let i = 0; i < headers.names.length; i++) text += `${headers.names[i]}: ${headers.values[i]}\r\n`;
  if (contentLength >= 0) text += `Content-Length: ${contentLength}\r\n`;
  text += keepAlive ? 'Connection: keep-alive\r\n\r\n' : 'Connection: close\r\n\r\n';
  return Buffer.from(text, 'latin1');
}
