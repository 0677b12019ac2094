// Shared dictionaries: named key/value stores like nginx's lua_shared_dict,
// for rate limits, health state and metrics. With the `ffi` and `napi`
// backends a dictionary is a file in /dev/shm that every worker and the agent
// map, so they all see the same data and `incr` is atomic across processes.
// With the `js` backend a dictionary lives in one process only: each worker
// has its own, and counts are per worker.
//
//   const limits = openSharedDict(backend, 'limits', parseDictSize('10m'));
//   const count = limits.incr(`${route}:${ip}`, 1, 0, 60_000); // creates with a 60 s TTL
//
// Keys are strings (UTF-8 encoded, 1..65535 bytes) or Buffers. Values are
// strings, Buffers or numbers. TTLs are milliseconds; 0 means never expires.
// Full dictionaries evict least recently used entries (stats().evictions).

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { NativeBackend } from './backend';
import {
  SHDICT_MAX_CAPACITY,
  SHDICT_MAX_KEY,
  SHDICT_MIN_CAPACITY,
  SHDICT_OPEN_FRESH,
  SHDICT_OUT_SIZE,
  ShdictMode,
  ShdictOut,
  ShdictStat,
  ShdictStatus,
  ShdictValueType,
} from './layout';

export interface SharedDictStats {
  /** Bytes available to entries. */
  capacity: number;
  /** Bytes taken by entries (each rounded up to a power of two). */
  used: number;
  items: number;
  /** Unexpired entries dropped to make room. */
  evictions: number;
  /** Expired entries removed. */
  expired: number;
  /** Times a process took over the lock from a process that died holding it. */
  lockRecoveries: number;
  /** ... of which the dictionary was emptied because the dead process was changing it. */
  resets: number;
  /** The largest entry in bytes: 40 + key bytes + value bytes (a number takes 8). */
  maxEntry: number;
}

export interface SharedDictEntry {
  value: Buffer | number;
  flags: number;
  /** Remaining ms; 0 = never expires. */
  ttlMs: number;
}

export interface OpenSharedDictOptions {
  /** The file; default sharedDictPath(name). */
  path?: string;
  /** Remove an existing file first, so the dictionary starts empty (the primary process, before workers start). */
  fresh?: boolean;
}

export type SharedDictKey = string | Buffer;
export type SharedDictValue = string | Buffer | number;

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Where the dictionary `name` lives: /dev/shm (memory) when present, else the temp directory. */
export function sharedDictPath(name: string): string {
  if (!NAME.test(name)) {
    throw new RangeError(`shared dict name "${name}" must be 1..64 letters, digits, "_" or "-"`);
  }
  const directory = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return path.join(directory, `palisade-${name}-${process.getuid?.() ?? 0}`);
}

/** "10m", "512k", "1g" or a byte count, as in lua_shared_dict sizes. */
export function parseDictSize(size: string | number): number {
  if (typeof size === 'number') return size;
  const match = /^(\d+)([kmg]?)$/i.exec(size.trim());
  if (match === null) throw new RangeError(`shared dict size "${size}" must be a number with an optional k, m or g`);
  const unit = match[2].toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
}

/**
 * Open the dictionary `name` of `capacity` bytes (the whole file), creating it
 * when absent. Every process opening the same name with the same capacity
 * shares it; a different capacity for an existing file is refused (start with
 * `fresh` to resize). Capacity 0 opens an existing dictionary whatever its size.
 */
export function openSharedDict(
  backend: NativeBackend,
  name: string,
  capacity: number,
  options: OpenSharedDictOptions = {},
): SharedDict {
  const file = options.path ?? sharedDictPath(name);
  const handle = backend.shdictOpen(Buffer.from(file), capacity, options.fresh === true ? SHDICT_OPEN_FRESH : 0);
  if (handle < 0) throw failure(name, handle, `open ${file} (${capacity} bytes)`);
  return new SharedDict(backend, name, handle);
}

function failure(name: string, status: number, doing: string): Error {
  const prefix = `shared dict "${name}": ${doing}`;
  switch (status) {
    case ShdictStatus.Key:
      return new RangeError(`${prefix}: keys must be 1..${SHDICT_MAX_KEY} bytes`);
    case ShdictStatus.TooLarge:
      return new RangeError(`${prefix}: the entry is larger than the largest this dictionary holds (stats().maxEntry)`);
    case ShdictStatus.NotNumber:
      return new TypeError(`${prefix}: the value is not a number`);
    case ShdictStatus.Arg:
      return new RangeError(`${prefix}: invalid argument (a TTL must be a finite number of ms >= 0)`);
    case ShdictStatus.Handle:
      return new Error(`${prefix}: the dictionary is closed`);
    case ShdictStatus.NotFound:
      return new Error(`${prefix}: no such dictionary (open it with a capacity to create it)`);
    case ShdictStatus.Open:
      return new Error(`${prefix}: cannot create or map the file (permissions, or no space in its file system)`);
    case ShdictStatus.BadFile:
      return new Error(`${prefix}: the file is not a shared dict of this Palisade version; remove it or open fresh`);
    case ShdictStatus.Size:
      return new RangeError(
        `${prefix}: capacity must be ${SHDICT_MIN_CAPACITY}..${SHDICT_MAX_CAPACITY} bytes and match an existing file ` +
          '(open it fresh to resize)',
      );
    case ShdictStatus.Lock:
      return new Error(`${prefix}: the lock could not be taken`);
    case ShdictStatus.TooMany:
      return new Error(`${prefix}: too many dictionaries open in this process`);
    default:
      return new Error(`${prefix}: failed with status ${status}`);
  }
}

export class SharedDict {
  readonly name: string;
  readonly backend: NativeBackend;
  #handle: number;
  // Reused for every call so a key or a read allocates nothing at the boundary.
  #key = Buffer.alloc(1024);
  /** The bytes #encode put the last key in: #key, or the caller's Buffer key. */
  #bytes: Buffer = this.#key;
  /** The string key #key holds (null after a Buffer key). */
  #lastKey: string | null = null;
  #lastKeyLength = 0;
  #value = Buffer.alloc(4096);
  readonly #out = new Float64Array(SHDICT_OUT_SIZE);

  constructor(backend: NativeBackend, name: string, handle: number) {
    this.backend = backend;
    this.name = name;
    this.#handle = handle;
  }

  /**
   * Puts the key's bytes in #bytes (the reused scratch buffer for strings) and
   * returns their length. A string key equal to the previous one is not encoded
   * again: a rate limiter asks for the same key request after request.
   */
  #encode(key: SharedDictKey): number {
    if (typeof key !== 'string') {
      this.#bytes = key;
      this.#lastKey = null;
      return key.length;
    }
    this.#bytes = this.#key;
    if (key === this.#lastKey) return this.#lastKeyLength;
    // A UTF-16 code unit takes at most 3 UTF-8 bytes, so short keys always fit without measuring.
    if (key.length * 3 > this.#key.length) {
      const bytes = Buffer.byteLength(key);
      if (bytes > SHDICT_MAX_KEY) throw failure(this.name, ShdictStatus.Key, `key of ${bytes} bytes`);
      if (bytes > this.#key.length) this.#bytes = this.#key = Buffer.alloc(bytes);
    }
    this.#lastKey = key;
    this.#lastKeyLength = this.#key.write(key, 0, 'utf8');
    return this.#lastKeyLength;
  }

  #check(status: number, doing: string): number {
    if (status < 0 && status !== ShdictStatus.NotFound && status !== ShdictStatus.Exists) {
      throw failure(this.name, status, doing);
    }
    return status;
  }

  /** Reads into #value (grown when too small); returns Ok or NotFound. */
  #read(key: SharedDictKey): number {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    for (;;) {
      const status = this.backend.shdictGet(this.#handle, bytes, length, this.#value, this.#out);
      if (status !== ShdictStatus.Buffer) return this.#check(status, 'get');
      this.#value = Buffer.alloc(Math.max(this.#out[ShdictOut.Length], this.#value.length * 2));
    }
  }

  /** The value as a string (bytes decoded as UTF-8) or a number; undefined when absent or expired. */
  get(key: SharedDictKey): string | number | undefined {
    if (this.#read(key) !== ShdictStatus.Ok) return undefined;
    const out = this.#out;
    if (out[ShdictOut.Type] === ShdictValueType.Number) return out[ShdictOut.Number];
    return this.#value.toString('utf8', 0, out[ShdictOut.Length]);
  }

  /** The value as a Buffer (a copy) or a number. */
  getBuffer(key: SharedDictKey): Buffer | number | undefined {
    if (this.#read(key) !== ShdictStatus.Ok) return undefined;
    const out = this.#out;
    if (out[ShdictOut.Type] === ShdictValueType.Number) return out[ShdictOut.Number];
    return Buffer.from(this.#value.subarray(0, out[ShdictOut.Length]));
  }

  /** The value with its flags and remaining TTL. */
  getEntry(key: SharedDictKey): SharedDictEntry | undefined {
    const value = this.getBuffer(key);
    if (value === undefined) return undefined;
    return { value, flags: this.#out[ShdictOut.Flags], ttlMs: this.#out[ShdictOut.Ttl] };
  }

  #store(mode: ShdictMode, key: SharedDictKey, value: SharedDictValue, ttlMs: number, flags: number): number {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    const doing = mode === ShdictMode.Set ? 'set' : mode === ShdictMode.Add ? 'add' : 'replace';
    if (typeof value === 'number') {
      const status = this.backend.shdictStoreNumber(this.#handle, mode, bytes, length, value, ttlMs, flags);
      return this.#check(status, doing);
    }
    const data = typeof value === 'string' ? Buffer.from(value) : value;
    return this.#check(
      this.backend.shdictStore(this.#handle, mode, bytes, length, data, data.length, ttlMs, flags),
      doing,
    );
  }

  /** Store a value (replacing any). flags: any uint32 kept with the value. */
  set(key: SharedDictKey, value: SharedDictValue, ttlMs = 0, flags = 0): void {
    this.#store(ShdictMode.Set, key, value, ttlMs, flags);
  }

  /** Store only when the key is absent (or expired); false when it is present. */
  add(key: SharedDictKey, value: SharedDictValue, ttlMs = 0, flags = 0): boolean {
    return this.#store(ShdictMode.Add, key, value, ttlMs, flags) >= 0;
  }

  /** Store only when the key is present; false when it is absent. */
  replace(key: SharedDictKey, value: SharedDictValue, ttlMs = 0, flags = 0): boolean {
    return this.#store(ShdictMode.Replace, key, value, ttlMs, flags) >= 0;
  }

  /**
   * Add delta atomically and return the new value. A missing key is created as
   * init + delta with TTL initTtlMs when init is given; otherwise undefined.
   * An existing key keeps its TTL. Throws when the value is not a number.
   */
  incr(key: SharedDictKey, delta = 1, init?: number, initTtlMs = 0): number | undefined {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    const hasInit = init === undefined ? 0 : 1;
    const status = this.backend.shdictIncr(
      this.#handle,
      bytes,
      length,
      delta,
      init ?? 0,
      initTtlMs,
      hasInit,
      this.#out,
    );
    return this.#check(status, 'incr') >= 0 ? this.#out[ShdictOut.Number] : undefined;
  }

  /** After an incr that returned a number: the key's remaining TTL in ms (0 = never), read in the same locked step. */
  get incrTtlMs(): number {
    return this.#out[ShdictOut.Ttl];
  }

  /** Remove the key; false when it was absent. */
  delete(key: SharedDictKey): boolean {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    return this.#check(this.backend.shdictDelete(this.#handle, bytes, length), 'delete') >= 0;
  }

  /** Set the key's TTL (0 = never expires); false when it is absent. */
  expire(key: SharedDictKey, ttlMs: number): boolean {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    return this.#check(this.backend.shdictExpire(this.#handle, bytes, length, ttlMs), 'expire') >= 0;
  }

  /** Remaining ms (0 = never expires), or undefined when absent. */
  ttl(key: SharedDictKey): number | undefined {
    const length = this.#encode(key);
    const bytes = this.#bytes;
    const status = this.#check(this.backend.shdictTtl(this.#handle, bytes, length, this.#out), 'ttl');
    return status >= 0 ? this.#out[ShdictOut.Ttl] : undefined;
  }

  /** Remove every entry. */
  flushAll(): void {
    this.#check(this.backend.shdictFlushAll(this.#handle), 'flushAll');
  }

  /** Remove up to maxCount expired entries (0 = all); returns how many went. */
  flushExpired(maxCount = 0): number {
    return this.#check(this.backend.shdictFlushExpired(this.#handle, maxCount), 'flushExpired');
  }

  stats(): SharedDictStats {
    const out = this.#out;
    this.#check(this.backend.shdictStats(this.#handle, out), 'stats');
    return {
      capacity: out[ShdictStat.Capacity],
      used: out[ShdictStat.Used],
      items: out[ShdictStat.Items],
      evictions: out[ShdictStat.Evictions],
      expired: out[ShdictStat.Expired],
      lockRecoveries: out[ShdictStat.LockRecoveries],
      resets: out[ShdictStat.Resets],
      maxEntry: out[ShdictStat.MaxEntry],
    };
  }

  /** Unmap this process's view. The data stays for other processes (and in the file). */
  close(): void {
    if (this.#handle < 0) return;
    this.backend.shdictClose(this.#handle);
    this.#handle = -1;
  }
}
