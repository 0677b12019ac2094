// IP addresses and CIDR ranges, IPv4 and IPv6, as lua-resty-ipmatcher accepts
// them: a plain address means /32 (IPv4) or /128 (IPv6), and an IPv4-mapped
// IPv6 address (`::ffff:10.0.0.1`) is treated as the IPv4 address it carries,
// so a dual-stack socket's `remoteAddress` matches IPv4 rules.
//
// Matching parses the address into 32-bit words and compares them against
// masked networks held in typed arrays; it allocates nothing.

export interface CidrMatcher {
  match(ip: string): boolean;
}

const DOT = 0x2e;
const COLON = 0x3a;
const SLASH = 0x2f;
const PERCENT = 0x25;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** Scratch for parseIpv6: the groups as written, before `::` is expanded. */
const ipv6Groups = new Uint16Array(8);
/** Scratch for one parsed IPv6 address, reused by every match() so matching allocates nothing. */
const scratchWords = new Uint32Array(4);

function hexValue(code: number): number {
  if (code >= DIGIT_0 && code <= DIGIT_9) return code - DIGIT_0;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** Dotted-quad IPv4 in s[start, end) as an unsigned 32-bit number, or -1. Leading zeros are refused, as inet_pton does. */
function parseIpv4(s: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i <= end) {
    let octet = 0;
    let digits = 0;
    const octetStart = i;
    while (i < end) {
      const code = s.charCodeAt(i);
      if (code < DIGIT_0 || code > DIGIT_9) break;
      octet = octet * 10 + (code - DIGIT_0);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1;
    if (digits > 1 && s.charCodeAt(octetStart) === DIGIT_0) return -1;
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (s.charCodeAt(i) !== DOT || octets === 4) return -1;
    i++;
  }
  return octets === 4 ? value : -1;
}

/** IPv6 in s[start, end) into four 32-bit words; false when it is not an IPv6 address. */
function parseIpv6(s: string, start: number, end: number, words: Uint32Array): boolean {
  const groups = ipv6Groups;
  let count = 0;
  let gapAt = -1;
  let i = start;
  if (i >= end) return false;
  if (s.charCodeAt(i) === COLON) {
    if (i + 1 >= end || s.charCodeAt(i + 1) !== COLON) return false;
    gapAt = 0;
    i += 2;
  }
  while (i < end) {
    if (count === 8) return false;
    let value = 0;
    let j = i;
    while (j < end) {
      const digit = hexValue(s.charCodeAt(j));
      if (digit < 0) break;
      value = value * 16 + digit;
      j++;
    }
    if (j < end && s.charCodeAt(j) === DOT) {
      // An embedded IPv4 tail (`::ffff:1.2.3.4`) fills the last two groups.
      if (count > 6) return false;
      const ipv4 = parseIpv4(s, i, end);
      if (ipv4 < 0) return false;
      groups[count++] = ipv4 >>> 16;
      groups[count++] = ipv4 & 0xffff;
      break;
    }
    const digits = j - i;
    if (digits === 0 || digits > 4) return false;
    groups[count++] = value;
    i = j;
    if (i === end) break;
    if (s.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < end && s.charCodeAt(i) === COLON) {
      if (gapAt >= 0) return false;
      gapAt = count;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gapAt < 0 ? count !== 8 : count === 8) return false;

  const zeros = 8 - count;
  for (let w = 0; w < 4; w++) {
    const high = groupAt(groups, 2 * w, gapAt, zeros);
    const low = groupAt(groups, 2 * w + 1, gapAt, zeros);
    words[w] = ((high << 16) | low) >>> 0;
  }
  return true;
}

/** The 16-bit group at `position` of the expanded address, given where `::` stood and how many zero groups it means. */
function groupAt(groups: Uint16Array, position: number, gapAt: number, zeros: number): number {
  if (gapAt < 0 || position < gapAt) return groups[position];
  if (position < gapAt + zeros) return 0;
  return groups[position - zeros];
}

function isMappedIpv4(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** Bounds of the address part of a client address: strips `[...]` and an IPv6 zone (`%eth0`). */
function addressEnd(ip: string, start: number): number {
  let end = ip.length;
  if (start > 0 && ip.charCodeAt(end - 1) === CLOSE_BRACKET) end--;
  for (let i = start; i < end; i++) {
    if (ip.charCodeAt(i) === PERCENT) return i;
  }
  return end;
}

const IPV4 = 4;
const IPV6 = 6;

/**
 * Parses a client address into `scratchWords`; returns 4 for IPv4 (the value in
 * word 3, mapped IPv6 included), 6 for IPv6, 0 for anything else.
 */
function parseClientAddress(ip: string, words: Uint32Array): number {
  if (typeof ip !== 'string' || ip.length === 0) return 0;
  const ipv4 = parseIpv4(ip, 0, ip.length);
  if (ipv4 >= 0) {
    words[3] = ipv4;
    return IPV4;
  }
  const start = ip.charCodeAt(0) === OPEN_BRACKET ? 1 : 0;
  if (start === 1 && ip.charCodeAt(ip.length - 1) !== CLOSE_BRACKET) return 0;
  if (!parseIpv6(ip, start, addressEnd(ip, start), words)) return 0;
  return isMappedIpv4(words) ? IPV4 : IPV6;
}

interface ParsedCidr {
  family: 4 | 6;
  prefix: number;
  words: Uint32Array;
}

/** Parses `addr` or `addr/prefix`; undefined when invalid. Mapped IPv6 ranges of /96 or longer become IPv4 ranges. */
function parseCidr(entry: string): ParsedCidr | undefined {
  if (typeof entry !== 'string' || entry.length === 0) return undefined;
  let addressEndAt = entry.length;
  let prefix = -1;
  const slash = entry.indexOf('/');
  if (slash >= 0) {
    addressEndAt = slash;
    const digits = entry.length - slash - 1;
    if (digits < 1 || digits > 3) return undefined;
    prefix = 0;
    for (let i = slash + 1; i < entry.length; i++) {
      const code = entry.charCodeAt(i);
      if (code < DIGIT_0 || code > DIGIT_9) return undefined;
      prefix = prefix * 10 + (code - DIGIT_0);
    }
    if (digits > 1 && entry.charCodeAt(slash + 1) === DIGIT_0) return undefined;
  }
  for (let i = 0; i < addressEndAt; i++) {
    if (entry.charCodeAt(i) === SLASH) return undefined;
  }

  const words = new Uint32Array(4);
  const ipv4 = parseIpv4(entry, 0, addressEndAt);
  if (ipv4 >= 0) {
    if (prefix > 32) return undefined;
    words[3] = ipv4;
    return { family: 4, prefix: prefix < 0 ? 32 : prefix, words };
  }
  if (!parseIpv6(entry, 0, addressEndAt, words)) return undefined;
  if (prefix > 128) return undefined;
  if (prefix < 0) prefix = 128;
  if (isMappedIpv4(words) && prefix >= 96) return { family: 4, prefix: prefix - 96, words };
  return { family: 6, prefix, words };
}

function prefixMask(prefix: number): number {
  if (prefix <= 0) return 0;
  if (prefix >= 32) return 0xffffffff;
  return (0xffffffff << (32 - prefix)) >>> 0;
}

/** True when `s` is an IPv4 or IPv6 address, with or without a `/prefix`. */
export function isValidIpOrCidr(s: string): boolean {
  return parseCidr(s) !== undefined;
}

/**
 * The address as network-order bytes: 4 for IPv4 (also for `::ffff:a.b.c.d`),
 * 16 for IPv6; undefined when it is not an address. Accepts `[v6]` and a zone.
 */
export function ipToBytes(ip: string): Buffer | undefined {
  const words = new Uint32Array(4);
  const family = parseClientAddress(ip, words);
  if (family === IPV4) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(words[3], 0);
    return bytes;
  }
  if (family === IPV6) {
    const bytes = Buffer.alloc(16);
    for (let w = 0; w < 4; w++) bytes.writeUInt32BE(words[w], 4 * w);
    return bytes;
  }
  return undefined;
}

class CidrList implements CidrMatcher {
  // Parallel typed arrays: network and mask per entry (4 words per IPv6 entry).
  readonly #ipv4Networks: Uint32Array;
  readonly #ipv4Masks: Uint32Array;
  readonly #ipv6Networks: Uint32Array;
  readonly #ipv6Masks: Uint32Array;
  readonly #ipv4Count: number;
  readonly #ipv6Count: number;

  constructor(entries: readonly ParsedCidr[]) {
    const ipv4 = entries.filter((entry) => entry.family === 4);
    const ipv6 = entries.filter((entry) => entry.family === 6);
    this.#ipv4Count = ipv4.length;
    this.#ipv6Count = ipv6.length;
    this.#ipv4Networks = new Uint32Array(ipv4.length);
    this.#ipv4Masks = new Uint32Array(ipv4.length);
    ipv4.forEach((entry, i) => {
      const mask = prefixMask(entry.prefix);
      this.#ipv4Masks[i] = mask;
      this.#ipv4Networks[i] = (entry.words[3] & mask) >>> 0;
    });
    this.#ipv6Networks = new Uint32Array(4 * ipv6.length);
    this.#ipv6Masks = new Uint32Array(4 * ipv6.length);
    ipv6.forEach((entry, i) => {
      for (let w = 0; w < 4; w++) {
        const mask = prefixMask(entry.prefix - 32 * w);
        this.#ipv6Masks[4 * i + w] = mask;
        this.#ipv6Networks[4 * i + w] = (entry.words[w] & mask) >>> 0;
      }
    });
  }

  match(ip: string): boolean {
    const words = scratchWords;
    const family = parseClientAddress(ip, words);
    if (family === IPV4) {
      const address = words[3];
      const networks = this.#ipv4Networks;
      const masks = this.#ipv4Masks;
      for (let i = 0; i < this.#ipv4Count; i++) {
        if ((address & masks[i]) >>> 0 === networks[i]) return true;
      }
      return false;
    }
    if (family === IPV6) {
      const networks = this.#ipv6Networks;
      const masks = this.#ipv6Masks;
      for (let i = 0; i < this.#ipv6Count; i++) {
        const base = 4 * i;
        if (
          (words[0] & masks[base]) >>> 0 === networks[base] &&
          (words[1] & masks[base + 1]) >>> 0 === networks[base + 1] &&
          (words[2] & masks[base + 2]) >>> 0 === networks[base + 2] &&
          (words[3] & masks[base + 3]) >>> 0 === networks[base + 3]
        ) {
          return true;
        }
      }
    }
    return false;
  }
}

/** Compiles a list of addresses and CIDR ranges; throws `invalid ip address: <entry>` for a bad one. */
export function parseCidrList(list: readonly string[]): CidrMatcher {
  const entries: ParsedCidr[] = [];
  for (const entry of list) {
    const parsed = parseCidr(entry);
    if (!parsed) throw new Error(`invalid ip address: ${String(entry)}`);
    entries.push(parsed);
  }
  return new CidrList(entries);
}
