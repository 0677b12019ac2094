// The TypeScript mirror of native/router.c: the same spec bytes, the same
// validation and the same candidate order (see the comment at the top of
// router.c). Paths and hosts are handled as latin1 strings, one char per byte,
// so comparing strings is comparing the raw bytes the C code compares.
import { MAX_CANDIDATES, Method, Out, ParseError, normalisedPath } from '../layout';
import { SPEC_MAGIC, TokenType, asciiLower } from '../router-spec';

const MAX_ROUTES = 1 << 22;
const MAX_ENTRIES = 1 << 24;
const MAX_HOSTS = 1 << 24;

type MatchToken = { type: TokenType.Literal; text: string } | { type: TokenType.Param | TokenType.CatchAll };

interface AddressRange {
  bytes: Uint8Array;
  bits: number;
}

interface RouteConditions {
  methodMask: number;
  addrs: AddressRange[];
}

interface UriEntry {
  route: number;
  priority: number;
  uriLength: number;
  tokens: MatchToken[];
  trailing: boolean;
}

interface HostGroup {
  exact: Map<string, UriEntry[]>;
  prefix: Map<string, UriEntry[]>;
  /** Distinct static-prefix lengths, longest first. */
  prefixLengths: number[];
}

interface RouteTable {
  routes: RouteConditions[];
  hostless: HostGroup;
  exactHosts: Map<string, HostGroup>;
  suffixHosts: Map<string, HostGroup>;
  /** Distinct wildcard suffix lengths, longest first. */
  suffixLengths: number[];
}

class SpecReader {
  pos = 0;
  bad = false;
  constructor(readonly buf: Buffer) {}

  private need(n: number): boolean {
    if (this.bad || this.buf.length - this.pos < n) this.bad = true;
    return !this.bad;
  }
  u8(): number {
    return this.need(1) ? this.buf[this.pos++] : 0;
  }
  u16(): number {
    if (!this.need(2)) return 0;
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    if (!this.need(4)) return 0;
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    if (!this.need(4)) return 0;
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  latin1(n: number): string {
    if (!this.need(n)) return '';
    const text = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    return text;
  }
  bytes(n: number): Uint8Array {
    if (!this.need(n)) return new Uint8Array(n);
    const copy = Uint8Array.prototype.slice.call(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return copy;
  }
}

function newGroup(): HostGroup {
  return { exact: new Map(), prefix: new Map(), prefixLengths: [] };
}

function addToBucket(map: Map<string, UriEntry[]>, key: string, entry: UriEntry): void {
  const bucket = map.get(key);
  if (bucket) bucket.push(entry);
  else map.set(key, [entry]);
}

function compareInBucket(a: UriEntry, b: UriEntry): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.uriLength !== b.uriLength) return b.uriLength - a.uriLength;
  return a.route - b.route;
}

function finishGroup(group: HostGroup): void {
  for (const bucket of group.exact.values()) bucket.sort(compareInBucket);
  const lengths = new Set<number>();
  for (const [key, bucket] of group.prefix) {
    bucket.sort(compareInBucket);
    lengths.add(key.length);
  }
  group.prefixLengths = [...lengths].sort((a, b) => b - a);
}

function decodeSpec(spec: Buffer): RouteTable | undefined {
  const rd = new SpecReader(spec);
  if (rd.u32() !== SPEC_MAGIC) return undefined;
  const routeCount = rd.u32();
  if (rd.bad || routeCount > MAX_ROUTES || routeCount > Math.floor((spec.length - rd.pos) / 16)) return undefined;

  const table: RouteTable = {
    routes: [],
    hostless: newGroup(),
    exactHosts: new Map(),
    suffixHosts: new Map(),
    suffixLengths: [],
  };
  const suffixLengths = new Set<number>();
  let entryCount = 0;
  let hostTotal = 0;
  for (let index = 0; index < routeCount; index++) {
    const priority = rd.i32();
    const methodMask = rd.u32();
    const hostCount = rd.u16();
    const uriCount = rd.u16();
    const addrCount = rd.u16();
    if (rd.u16() !== 0 || rd.bad) return undefined;
    hostTotal += hostCount;
    if (hostTotal > MAX_HOSTS) return undefined;

    const groups: HostGroup[] = [];
    for (let h = 0; h < hostCount; h++) {
      let host = asciiLower(rd.latin1(rd.u8()));
      if (rd.bad) return undefined;
      let hosts = table.exactHosts;
      if (host.startsWith('*')) {
        host = host.slice(1);
        hosts = table.suffixHosts;
        suffixLengths.add(host.length);
      }
      let group = hosts.get(host);
      if (!group) hosts.set(host, (group = newGroup()));
      groups.push(group);
    }
    if (hostCount === 0) groups.push(table.hostless);

    for (let u = 0; u < uriCount; u++) {
      const uriLength = rd.u16();
      const staticPrefix = rd.latin1(rd.u16());
      const flags = rd.u8();
      const tokenCount = rd.u8();
      if (rd.bad || flags > 1) return undefined;
      const tokens: MatchToken[] = [];
      for (let t = 0; t < tokenCount; t++) {
        const type = rd.u8();
        if (type === TokenType.Literal) tokens.push({ type, text: rd.latin1(rd.u16()) });
        else if (type === TokenType.CatchAll && t + 1 !== tokenCount) return undefined;
        else if (type > TokenType.CatchAll) return undefined;
        else tokens.push({ type: type as TokenType.Param | TokenType.CatchAll });
      }
      if (rd.bad) return undefined;
      entryCount += groups.length;
      if (entryCount > MAX_ENTRIES) return undefined;
      const entry: UriEntry = { route: index, priority, uriLength, tokens, trailing: flags === 1 };
      const isPrefix = tokenCount > 0 || flags === 1;
      for (const group of groups) addToBucket(isPrefix ? group.prefix : group.exact, staticPrefix, entry);
    }

    const addrs: AddressRange[] = [];
    for (let a = 0; a < addrCount; a++) {
      const bits = rd.u8();
      const bytes = rd.bytes(16);
      if (rd.bad || bits > 128) return undefined;
      addrs.push({ bytes, bits });
    }
    table.routes.push({ methodMask, addrs });
  }
  if (rd.pos !== spec.length) return undefined;

  finishGroup(table.hostless);
  for (const group of table.exactHosts.values()) finishGroup(group);
  for (const group of table.suffixHosts.values()) finishGroup(group);
  table.suffixLengths = [...suffixLengths].sort((a, b) => b - a);
  return table;
}

// Handles are indexes into this table; a freed slot is reused by the next build.
const routeTables: (RouteTable | undefined)[] = [];

export function routerBuild(spec: Buffer): number {
  const table = decodeSpec(spec);
  if (!table) return ParseError.Router;
  let handle = routeTables.indexOf(undefined);
  if (handle < 0) handle = routeTables.length;
  routeTables[handle] = table;
  return handle;
}

export function routerFree(router: number): void {
  if (router >= 0 && router < routeTables.length) routeTables[router] = undefined;
}

// Reused per match (single-threaded): the client address as 16 bytes, IPv4 mapped.
const clientAddress = new Uint8Array(16);

function loadClientAddress(ip: Uint8Array): boolean {
  if (ip.length === 16) {
    clientAddress.set(ip);
    return true;
  }
  if (ip.length !== 4) return false;
  clientAddress.fill(0, 0, 10);
  clientAddress[10] = 0xff;
  clientAddress[11] = 0xff;
  clientAddress.set(ip, 12);
  return true;
}

function addressInRange(range: AddressRange): boolean {
  const whole = range.bits >> 3;
  for (let i = 0; i < whole; i++) if (clientAddress[i] !== range.bytes[i]) return false;
  const rest = range.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (clientAddress[whole] & mask) === (range.bytes[whole] & mask);
}

class Match {
  count = 0;
  constructor(
    readonly table: RouteTable,
    readonly path: string,
    readonly method: number,
    readonly hasAddress: boolean,
    readonly out: Int32Array,
  ) {}

  private accepts(route: RouteConditions): boolean {
    const mask = route.methodMask;
    if (mask !== 0 && (this.method === Method.Other || this.method > 31 || !(mask & (1 << this.method)))) {
      return false;
    }
    if (route.addrs.length === 0) return true;
    if (!this.hasAddress) return false;
    for (const range of route.addrs) if (addressInRange(range)) return true;
    return false;
  }

  private consider(route: number): void {
    for (let i = 0; i < this.count; i++) if (this.out[Out.Routes + i] === route) return;
    if (this.accepts(this.table.routes[route])) this.out[Out.Routes + this.count++] = route;
  }

  private tokensMatch(entry: UriEntry, start: number): boolean {
    const path = this.path;
    let pos = start;
    for (const token of entry.tokens) {
      if (token.type === TokenType.Literal) {
        if (!path.startsWith(token.text, pos)) return false;
        pos += token.text.length;
      } else if (token.type === TokenType.Param) {
        let end = path.indexOf('/', pos);
        if (end < 0) end = path.length;
        if (end === pos) return false;
        pos = end;
      } else {
        return true;
      }
    }
    return entry.trailing || pos === path.length;
  }

  group(group: HostGroup): void {
    const path = this.path;
    const exact = group.exact.get(path);
    if (exact) {
      for (let i = 0; i < exact.length && this.count < MAX_CANDIDATES; i++) this.consider(exact[i].route);
    }
    for (const length of group.prefixLengths) {
      if (this.count >= MAX_CANDIDATES) return;
      if (length > path.length) continue;
      const bucket = group.prefix.get(length === path.length ? path : path.slice(0, length));
      if (!bucket) continue;
      for (let i = 0; i < bucket.length && this.count < MAX_CANDIDATES; i++) {
        if (this.tokensMatch(bucket[i], length)) this.consider(bucket[i].route);
      }
    }
  }
}

function matchRequest(router: number, method: number, path: string, host: string, ip: Uint8Array, out: Int32Array) {
  const table = router >= 0 ? routeTables[router] : undefined;
  if (!table) {
    out[Out.RouteCount] = 0;
    return ParseError.Router;
  }
  const match = new Match(table, path, method, loadClientAddress(ip), out);
  if (host.length > 0) {
    const lowerHost = asciiLower(host);
    const exact = table.exactHosts.get(lowerHost);
    if (exact) match.group(exact);
    for (const length of table.suffixLengths) {
      if (match.count >= MAX_CANDIDATES) break;
      if (length >= lowerHost.length) continue;
      const group = table.suffixHosts.get(lowerHost.slice(lowerHost.length - length));
      if (group) match.group(group);
    }
  }
  if (match.count < MAX_CANDIDATES) match.group(table.hostless);
  out[Out.RouteCount] = match.count;
  return 0;
}

/** Match a parsed request head (method, path and host spans already in out[]). */
export function routerMatch(router: number, buf: Buffer, out: Int32Array, ip: Buffer): number {
  // Routes match $uri: the normalised path when the parser wrote one, else the path span itself.
  const normalised = normalisedPath(out);
  const path =
    normalised !== null
      ? normalised.toString('latin1')
      : buf.toString('latin1', out[Out.TargetStart], Math.max(out[Out.TargetStart], out[Out.PathEnd]));
  const hostStart = out[Out.HostStart];
  const host = buf.toString('latin1', hostStart, Math.max(hostStart, out[Out.HostEnd]));
  return matchRequest(router, out[Out.Method], path, host, ip, out);
}

/** Match without a request head, like pal_router_match_path in router.c (tests and benchmarks). */
export function routerMatchPath(
  router: number,
  method: number,
  path: Buffer,
  host: Buffer,
  ip: Buffer,
  out: Int32Array,
): number {
  return matchRequest(router, method, path.toString('latin1'), host.toString('latin1'), ip, out);
}
