// A header name checked once and kept with what matching and writing it takes:
// its lower-case form, its length bit and its "Name: " bytes. Plugins make the
// names they set when their configuration compiles (X-RateLimit-Remaining,
// X-Consumer-Username), so setting a header on a request costs no validation,
// no lower-casing and no string building.

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A header line's name length as one bit of a mask; names of 31 bytes or more share bit 31. */
export function lengthBit(length: number): number {
  return 1 << (length < 31 ? length : 31);
}

export class HeaderName {
  /** As written on the wire. */
  readonly name: string;
  readonly lower: string;
  /** lengthBit of the name: a set of names ORs theirs, and a line whose bit is clear matches none of them. */
  readonly lengthBit: number;
  /** "Name: " in latin1, written before each value. */
  readonly prefix: Buffer;
  /**
   * The value last written under this name, and once it came twice in a row its
   * whole line, copied at once while the value stays the same (X-RateLimit-Limit,
   * X-Consumer-Username; X-RateLimit-Reset within a second). Head building is
   * synchronous and per thread, so this needs no more care than a cache.
   */
  lastValue: string | number | null = null;
  lastLine: Buffer | null = null;

  constructor(name: string) {
    if (!isHeaderName(name)) throw new TypeError(`invalid header name: ${JSON.stringify(name)}`);
    this.name = name;
    this.lower = name.toLowerCase();
    this.lengthBit = lengthBit(name.length);
    this.prefix = Buffer.from(`${name}: `, 'latin1');
  }
}

/** Whether `name` is a valid header name (an RFC 9110 token). */
export function isHeaderName(name: string): boolean {
  return TOKEN.test(name);
}

// Plugins that pass names as strings use the same few on every request: each is
// checked and prepared once, up to a bound (names built per request would grow it).
const CACHE_LIMIT = 1024;
const cache = new Map<string, HeaderName>();

/** The HeaderName for `name` (itself when it is one); throws a TypeError for a name that is not a token. */
export function headerName(name: string | HeaderName): HeaderName {
  if (typeof name !== 'string') return name;
  let header = cache.get(name);
  if (header === undefined) {
    header = new HeaderName(name);
    if (cache.size < CACHE_LIMIT) cache.set(name, header);
  }
  return header;
}
