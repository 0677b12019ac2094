// Route table spec: what the data plane hands to pal_router_build (C) and to
// the TypeScript mirror (src/native/js/router.ts). Both decode the same bytes,
// so every decision about what a uri means is made once, here, in the encoder.
//
// Binary format (all integers little-endian):
//
//   header   u32 magic = 0x31545250 ("PRT1")   u32 route_count
//   route    i32 priority
//            u32 method_mask   bit (1 << PAL_M_*) per allowed method; 0 = any method;
//                              bit 0 marks a method name the ABI has no code for (never matches)
//            u16 host_count  u16 uri_count  u16 addr_count  u16 reserved (0)
//            host_count x { u8 len, bytes }   lower-case; a leading '*' makes a wildcard whose
//                                             suffix is the rest ('*.foo.com' -> '.foo.com')
//            uri_count  x { u16 uri_len       length of the original uri (ordering tie-break)
//                           u16 static_len, bytes   the literal part before any ':' / '*'
//                           u8 flags          bit 0: trailing '*', any rest of the path matches
//                           u8 token_count
//                           token_count x { u8 type: 0 literal (u16 len, bytes) | 1 param | 2 catch-all } }
//            addr_count x { u8 prefix_bits (0..128), 16 address bytes }
//                           IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) with prefix_bits + 96
//
// The route index is the route's position. A uri with no tokens and no trailing
// '*' is an exact path; everything else is a prefix/parameter path whose rank
// is its static_len. A catch-all token is always the last one. The candidate
// order and the IPv4/IPv6 address rule (IPv4 compared as ::ffff:a.b.c.d) are
// described at the top of native/router.c; both backends reject any spec that
// breaks this layout (routerBuild < 0).

import { METHOD_CODES } from './layout';

export interface RouteMatchSpec {
  /** APISIX route priority (default 0), higher first. */
  priority: number;
  /** Upper-case method names; empty = any method. */
  methods: readonly string[];
  /** Lower-case hosts: exact or '*.suffix' wildcard; empty = no host condition. */
  hosts: readonly string[];
  /** '/exact', '/prefix*', '/user/:name', '/files/*path'. */
  uris: readonly string[];
  /** IPv4/IPv6 addresses or CIDRs; empty = any client. */
  remoteAddrs: readonly string[];
}

export const SPEC_MAGIC = 0x31545250;

export const enum TokenType {
  Literal = 0,
  Param = 1,
  CatchAll = 2,
}

export type UriToken =
  | { readonly type: TokenType.Literal; readonly text: string }
  | { readonly type: TokenType.Param; readonly name: string }
  | { readonly type: TokenType.CatchAll; readonly name: string };

export interface UriPattern {
  /** The literal part before the first parameter or trailing '*'. */
  readonly staticPrefix: string;
  /** What follows the static prefix: literals, ':name' params and a final '*name'. */
  readonly tokens: readonly UriToken[];
  /** A trailing '*': whatever follows the matched part is accepted. */
  readonly trailing: boolean;
}

/**
 * Split an APISIX uri into its static prefix and tokens. A ':' or '*' opens a
 * parameter only at the start of a segment (right after a '/'); a ':name' runs
 * to the next '/', a '*name' to the end of the uri. A final '*' makes a prefix
 * match (so '/foo/*' and '/foo*' both accept any rest).
 */
export function parseUriPattern(uri: string): UriPattern {
  let body = uri;
  let trailing = false;
  if (body.endsWith('*')) {
    body = body.slice(0, -1);
    trailing = true;
  }
  const tokens: UriToken[] = [];
  let staticPrefix: string | undefined;
  let literalStart = 0;
  let i = 0;
  while (i < body.length) {
    const c = body[i];
    const atSegmentStart = i === 0 || body[i - 1] === '/';
    if (atSegmentStart && (c === ':' || c === '*')) {
      const literal = body.slice(literalStart, i);
      if (staticPrefix === undefined) staticPrefix = literal;
      else if (literal.length > 0) tokens.push({ type: TokenType.Literal, text: literal });
      if (c === '*') {
        tokens.push({ type: TokenType.CatchAll, name: body.slice(i + 1) });
        literalStart = body.length;
        break;
      }
      let end = body.indexOf('/', i + 1);
      if (end < 0) end = body.length;
      tokens.push({ type: TokenType.Param, name: body.slice(i + 1, end) });
      literalStart = i = end;
      continue;
    }
    i++;
  }
  const rest = body.slice(literalStart);
  if (staticPrefix === undefined) staticPrefix = rest;
  else if (rest.length > 0) tokens.push({ type: TokenType.Literal, text: rest });
  return { staticPrefix, tokens, trailing };
}

/** The method mask of a route: bit (1 << PAL_M_*) per method, 0 for any. */
export function methodMask(methods: readonly string[]): number {
  let mask = 0;
  for (const name of methods) {
    const code = METHOD_CODES[name.toUpperCase()];
    // A method without an ABI code can only arrive as PAL_M_OTHER, which never matches a mask.
    mask |= code === undefined ? 1 : 1 << code;
  }
  return mask >>> 0;
}

/** ASCII-only lower-casing, the same as the C router's, so both backends fold hosts alike. */
export function asciiLower(text: string): string {
  return /[A-Z]/.test(text) ? text.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : text;
}

/** An address or CIDR as 16 bytes (IPv4 mapped to ::ffff:a.b.c.d) and a prefix length 0..128. */
export interface AddressRange {
  bytes: Uint8Array;
  bits: number;
}

export function parseAddressRange(text: string): AddressRange {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseIPv4(addressText);
  const bytes = v4 ?? parseIPv6(addressText);
  if (bytes === undefined) throw new TypeError(`router spec: "${text}" is not an IPv4/IPv6 address or CIDR`);
  const maxBits = v4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const bitsText = text.slice(slash + 1);
    bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    if (!(bits >= 0 && bits <= maxBits)) throw new TypeError(`router spec: bad prefix length in "${text}"`);
  }
  return { bytes, bits: v4 ? bits + 96 : bits };
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i])) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    bytes[12 + i] = n;
  }
  return bytes;
}

function parseIPv6(text: string): Uint8Array | undefined {
  const doubleColon = text.indexOf('::');
  if (doubleColon !== text.lastIndexOf('::')) return undefined;
  const head = doubleColon < 0 ? text : text.slice(0, doubleColon);
  const tail = doubleColon < 0 ? '' : text.slice(doubleColon + 2);
  const headGroups = parseIPv6Groups(head, tail === '' && doubleColon < 0);
  const tailGroups = parseIPv6Groups(tail, true);
  if (headGroups === undefined || tailGroups === undefined) return undefined;
  const count = headGroups.length + tailGroups.length;
  if (doubleColon < 0 ? count !== 8 : count > 7) return undefined;
  const groups = new Array<number>(8).fill(0);
  headGroups.forEach((g, i) => (groups[i] = g));
  tailGroups.forEach((g, i) => (groups[8 - tailGroups.length + i] = g));
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = groups[i] >> 8;
    bytes[2 * i + 1] = groups[i] & 0xff;
  }
  return bytes;
}

/** Colon-separated 16-bit groups; the last one may be a dotted IPv4 (two groups) when `mayEndInIPv4`. */
function parseIPv6Groups(text: string, mayEndInIPv4: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (mayEndInIPv4 && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      groups.push((v4[12] << 8) | v4[13], (v4[14] << 8) | v4[15]);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/** Encode route conditions into the binary spec described at the top of this file. */
export function encodeRouterSpec(routes: readonly RouteMatchSpec[]): Buffer {
  const writer = new SpecWriter();
  writer.u32(SPEC_MAGIC);
  writer.u32(routes.length);
  for (const route of routes) writeRoute(writer, route);
  return writer.finish();
}

/**
 * One route's record, as encodeRouterSpec writes it. Records are
 * self-contained, so a caller that keeps them per route can rebuild a spec
 * after a one-route change with assembleRouterSpec instead of encoding every
 * route again.
 */
export function encodeRouteRecord(route: RouteMatchSpec): Buffer {
  const writer = new SpecWriter();
  writeRoute(writer, route);
  return writer.finish();
}

/** A spec from records made by encodeRouteRecord, in route-index order. */
export function assembleRouterSpec(records: readonly Buffer[]): Buffer {
  let size = 8;
  for (const record of records) size += record.length;
  const spec = Buffer.allocUnsafe(size);
  spec.writeUInt32LE(SPEC_MAGIC, 0);
  spec.writeUInt32LE(records.length, 4);
  let pos = 8;
  for (const record of records) pos += record.copy(spec, pos);
  return spec;
}

function writeRoute(writer: SpecWriter, route: RouteMatchSpec): void {
  if (!Number.isInteger(route.priority) || route.priority < -2147483648 || route.priority > 2147483647) {
    throw new RangeError(`router spec: priority ${route.priority} is not a 32-bit integer`);
  }
  const hosts = [...new Set(route.hosts.map(asciiLower))];
  const addrs = route.remoteAddrs.map(parseAddressRange);
  checkCount('hosts', hosts.length, 0xffff);
  checkCount('uris', route.uris.length, 0xffff);
  checkCount('remote_addrs', addrs.length, 0xffff);
  writer.i32(route.priority);
  writer.u32(methodMask(route.methods));
  writer.u16(hosts.length);
  writer.u16(route.uris.length);
  writer.u16(addrs.length);
  writer.u16(0);
  for (const host of hosts) {
    const bytes = Buffer.from(host, 'utf8');
    checkCount('host length', bytes.length, 0xff);
    writer.u8(bytes.length);
    writer.bytes(bytes);
  }
  for (const uri of route.uris) {
    const pattern = parseUriPattern(uri);
    const uriLength = Buffer.byteLength(uri, 'utf8');
    checkCount('uri length', uriLength, 0xffff);
    checkCount('uri parameters', pattern.tokens.length, 0xff);
    writer.u16(uriLength);
    writer.string16(pattern.staticPrefix);
    writer.u8(pattern.trailing ? 1 : 0);
    writer.u8(pattern.tokens.length);
    for (const token of pattern.tokens) {
      writer.u8(token.type);
      if (token.type === TokenType.Literal) writer.string16(token.text);
    }
  }
  for (const addr of addrs) {
    writer.u8(addr.bits);
    writer.bytes(addr.bytes);
  }
}

function checkCount(what: string, n: number, max: number): void {
  if (n > max) throw new RangeError(`router spec: too many ${what} (${n} > ${max})`);
}

class SpecWriter {
  private buf = Buffer.allocUnsafe(4096);
  private pos = 0;

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
  u8(n: number): void {
    this.reserve(1);
    this.buf[this.pos++] = n;
  }
  u16(n: number): void {
    this.reserve(2);
    this.pos = this.buf.writeUInt16LE(n, this.pos);
  }
  u32(n: number): void {
    this.reserve(4);
    this.pos = this.buf.writeUInt32LE(n, this.pos);
  }
  i32(n: number): void {
    this.reserve(4);
    this.pos = this.buf.writeInt32LE(n, this.pos);
  }
  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  string16(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    checkCount('bytes in a uri part', bytes.length, 0xffff);
    this.u16(bytes.length);
    this.bytes(bytes);
  }
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}
