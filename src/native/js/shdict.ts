// The shared dictionary of native/shdict.c in plain TypeScript, for the `js`
// backend. It is PER PROCESS: a Map in this process's memory, so workers and
// the agent do not see each other's data (a rate limit counts per worker).
// Within one process it behaves as the C one: the same results, TTLs in ms,
// LRU eviction, and the same capacity arithmetic (each entry costs the
// power-of-two block C would give it), without C's fragmentation.
//
// A "path" names a dictionary within the process: opening the same path twice
// gives two handles on the same data, as two mappings of one file do.

import {
  SHDICT_ENTRY_HEADER,
  SHDICT_MAX_CAPACITY,
  SHDICT_MAX_KEY,
  SHDICT_MIN_CAPACITY,
  SHDICT_OPEN_FRESH,
  ShdictMode,
  ShdictOut,
  ShdictStat,
  ShdictStatus,
  ShdictValueType,
} from '../layout';

const HEADER_SIZE = 4096;
const MIN_ORDER = 6;
const MAX_ORDER = 20;
const MAX_PATH = 4096;

interface Entry {
  type: ShdictValueType;
  /** Bytes values only (a private copy). */
  bytes: Buffer | undefined;
  /** Number values only. */
  number: number;
  flags: number;
  /** Absolute ms on this process's monotonic clock; 0 = never. */
  expiresMs: number;
  /** Block bytes this entry would take in the C arena. */
  cost: number;
}

interface Store {
  /** Map order is the LRU order: first = least recently used. Keys are latin1 strings of the key bytes. */
  readonly entries: Map<string, Entry>;
  readonly fileSize: number;
  readonly arenaSize: number;
  readonly maxEntry: number;
  used: number;
  evictions: number;
  expired: number;
}

const storesByPath = new Map<string, Store>();
const handles: (Store | undefined)[] = [];

function nowMs(): number {
  return Math.floor(performance.now());
}

/** The arena size and largest block of a file of `capacity` bytes, as init_dict computes them. */
function layoutFor(capacity: number): { arenaSize: number; maxEntry: number } {
  let bucketCount = 64;
  while (bucketCount < 1 << 24 && bucketCount * 2 <= Math.floor(capacity / 256)) bucketCount *= 2;
  const arenaOffset = HEADER_SIZE + Math.ceil((bucketCount * 4) / 4096) * 4096;
  const arenaSize = Math.floor((capacity - arenaOffset) / 64) * 64;
  let maxOrder = MIN_ORDER;
  while (maxOrder < MAX_ORDER && 2 ** (maxOrder + 1) <= arenaSize) maxOrder++;
  return { arenaSize, maxEntry: 2 ** maxOrder };
}

/** The power-of-two block for an entry of `bytes`. */
function blockFor(bytes: number): number {
  let block = 2 ** MIN_ORDER;
  while (block < bytes) block *= 2;
  return block;
}

/** TTL in ms (0 = never) as an absolute expiry, or -1 when invalid. */
function expiryFor(ttlMs: number, now: number): number {
  if (!(ttlMs >= 0) || ttlMs > 1e15) return -1;
  return ttlMs === 0 ? 0 : now + Math.ceil(ttlMs);
}

/** The inverse, for out[Ttl]: ms left until an absolute expiry (0 = never expires). */
function remainingMs(expiresMs: number, now: number): number {
  return expiresMs === 0 ? 0 : expiresMs - now;
}

function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresMs !== 0 && entry.expiresMs <= now;
}

function storeOf(dict: number): Store | undefined {
  return handles[dict];
}

function badKey(keyLen: number): boolean {
  return keyLen === 0 || keyLen > SHDICT_MAX_KEY;
}

function remove(store: Store, name: string, entry: Entry): void {
  store.entries.delete(name);
  store.used -= entry.cost;
}

/** The live entry for `name`; an expired one is removed on the way, as in C. */
function find(store: Store, name: string, now: number): Entry | undefined {
  const entry = store.entries.get(name);
  if (entry !== undefined && isExpired(entry, now)) {
    remove(store, name, entry);
    store.expired++;
    return undefined;
  }
  return entry;
}

function touch(store: Store, name: string, entry: Entry): void {
  store.entries.delete(name);
  store.entries.set(name, entry);
}

/** Add an entry (the key is absent), evicting least recently used ones for room. Returns Ok or StoredForcibly. */
function insert(store: Store, name: string, entry: Entry, now: number): number {
  let forcible = false;
  while (store.used + entry.cost > store.arenaSize) {
    const [victimName, victim] = store.entries.entries().next().value as [string, Entry];
    if (isExpired(victim, now)) {
      store.expired++;
    } else {
      store.evictions++;
      forcible = true;
    }
    remove(store, victimName, victim);
  }
  store.entries.set(name, entry);
  store.used += entry.cost;
  return forcible ? ShdictStatus.StoredForcibly : ShdictStatus.Ok;
}

function writeInfo(entry: Entry, now: number, out: Float64Array): void {
  out[ShdictOut.Type] = entry.type;
  out[ShdictOut.Length] = entry.bytes === undefined ? 8 : entry.bytes.length;
  out[ShdictOut.Flags] = entry.flags;
  out[ShdictOut.Ttl] = remainingMs(entry.expiresMs, now);
  out[ShdictOut.Number] = entry.type === ShdictValueType.Number ? entry.number : 0;
}

export function shdictOpen(path: Buffer, capacity: number, flags: number): number {
  if (path.length === 0 || path.length >= MAX_PATH || path.includes(0)) return ShdictStatus.Arg;
  if (
    !(capacity === 0 || (capacity >= SHDICT_MIN_CAPACITY && capacity <= SHDICT_MAX_CAPACITY)) ||
    !Number.isInteger(capacity)
  ) {
    return ShdictStatus.Size;
  }
  let handle = handles.indexOf(undefined);
  if (handle < 0) handle = handles.length;
  if (handle >= 256) return ShdictStatus.TooMany;
  const name = path.toString('latin1', 0, path.length);
  if ((flags & SHDICT_OPEN_FRESH) !== 0) storesByPath.delete(name);
  let store = storesByPath.get(name);
  if (store === undefined) {
    if (capacity === 0) return ShdictStatus.NotFound;
    const { arenaSize, maxEntry } = layoutFor(capacity);
    store = { entries: new Map(), fileSize: capacity, arenaSize, maxEntry, used: 0, evictions: 0, expired: 0 };
    storesByPath.set(name, store);
  } else if (capacity !== 0 && capacity !== store.fileSize) {
    return ShdictStatus.Size;
  }
  handles[handle] = store;
  return handle;
}

export function shdictClose(dict: number): number {
  if (storeOf(dict) === undefined) return ShdictStatus.Handle;
  handles[dict] = undefined;
  return ShdictStatus.Ok;
}

export function shdictGet(dict: number, key: Buffer, keyLen: number, value: Buffer, out: Float64Array): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const store = storeOf(dict);
  if (store === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  const now = nowMs();
  const name = key.toString('latin1', 0, keyLen);
  const entry = find(store, name, now);
  if (entry === undefined) return ShdictStatus.NotFound;
  writeInfo(entry, now, out);
  touch(store, name, entry);
  if (entry.bytes === undefined) return ShdictStatus.Ok;
  if (entry.bytes.length > value.length) return ShdictStatus.Buffer;
  entry.bytes.copy(value, 0);
  return ShdictStatus.Ok;
}

function store(dict: number, mode: number, key: Buffer, keyLen: number, entry: Entry, ttlMs: number): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  if (mode !== ShdictMode.Set && mode !== ShdictMode.Add && mode !== ShdictMode.Replace) return ShdictStatus.Arg;
  const now = nowMs();
  entry.expiresMs = expiryFor(ttlMs, now);
  if (entry.expiresMs < 0) return ShdictStatus.Arg;
  entry.cost = blockFor(SHDICT_ENTRY_HEADER + keyLen + (entry.bytes === undefined ? 8 : entry.bytes.length));
  const name = key.toString('latin1', 0, keyLen);
  const existing = find(target, name, now);
  if (entry.cost > target.maxEntry) return ShdictStatus.TooLarge;
  if (mode === ShdictMode.Add && existing !== undefined) return ShdictStatus.Exists;
  if (mode === ShdictMode.Replace && existing === undefined) return ShdictStatus.NotFound;
  if (existing !== undefined) remove(target, name, existing);
  return insert(target, name, entry, now);
}

export function shdictStore(
  dict: number,
  mode: number,
  key: Buffer,
  keyLen: number,
  value: Buffer,
  valueLen: number,
  ttlMs: number,
  flags: number,
): number {
  if (valueLen > value.length) return ShdictStatus.Arg;
  const bytes = Buffer.from(value.subarray(0, valueLen)); // a copy: the caller reuses its buffer
  const entry: Entry = { type: ShdictValueType.Bytes, bytes, number: 0, flags: flags >>> 0, expiresMs: 0, cost: 0 };
  return store(dict, mode, key, keyLen, entry, ttlMs);
}

export function shdictStoreNumber(
  dict: number,
  mode: number,
  key: Buffer,
  keyLen: number,
  value: number,
  ttlMs: number,
  flags: number,
): number {
  const entry: Entry = {
    type: ShdictValueType.Number,
    bytes: undefined,
    number: value,
    flags: flags >>> 0,
    expiresMs: 0,
    cost: 0,
  };
  return store(dict, mode, key, keyLen, entry, ttlMs);
}

export function shdictIncr(
  dict: number,
  key: Buffer,
  keyLen: number,
  delta: number,
  init: number,
  initTtlMs: number,
  hasInit: number,
  out: Float64Array,
): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  const now = nowMs();
  const expiresMs = expiryFor(initTtlMs, now);
  if (expiresMs < 0) return ShdictStatus.Arg;
  const name = key.toString('latin1', 0, keyLen);
  const existing = find(target, name, now);
  if (existing !== undefined) {
    if (existing.type !== ShdictValueType.Number) return ShdictStatus.NotNumber;
    existing.number += delta;
    touch(target, name, existing);
    out[ShdictOut.Number] = existing.number;
    out[ShdictOut.Ttl] = remainingMs(existing.expiresMs, now);
    return ShdictStatus.Ok;
  }
  if (hasInit === 0) return ShdictStatus.NotFound;
  const cost = blockFor(SHDICT_ENTRY_HEADER + keyLen + 8);
  if (cost > target.maxEntry) return ShdictStatus.TooLarge;
  const number = init + delta;
  const entry: Entry = { type: ShdictValueType.Number, bytes: undefined, number, flags: 0, expiresMs, cost };
  const status = insert(target, name, entry, now);
  out[ShdictOut.Number] = number;
  out[ShdictOut.Ttl] = remainingMs(expiresMs, now);
  return status;
}

export function shdictDelete(dict: number, key: Buffer, keyLen: number): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  const name = key.toString('latin1', 0, keyLen);
  const existing = find(target, name, nowMs());
  if (existing === undefined) return ShdictStatus.NotFound;
  remove(target, name, existing);
  return ShdictStatus.Ok;
}

export function shdictExpire(dict: number, key: Buffer, keyLen: number, ttlMs: number): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  const now = nowMs();
  const expiresMs = expiryFor(ttlMs, now);
  if (expiresMs < 0) return ShdictStatus.Arg;
  const existing = find(target, key.toString('latin1', 0, keyLen), now);
  if (existing === undefined) return ShdictStatus.NotFound;
  existing.expiresMs = expiresMs;
  return ShdictStatus.Ok;
}

export function shdictTtl(dict: number, key: Buffer, keyLen: number, out: Float64Array): number {
  if (keyLen > key.length) return ShdictStatus.Arg; // as the bindings refuse it before C
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  if (badKey(keyLen)) return ShdictStatus.Key;
  const now = nowMs();
  const existing = find(target, key.toString('latin1', 0, keyLen), now);
  if (existing === undefined) return ShdictStatus.NotFound;
  out[ShdictOut.Ttl] = remainingMs(existing.expiresMs, now);
  return ShdictStatus.Ok;
}

export function shdictFlushAll(dict: number): number {
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  target.entries.clear();
  target.used = 0;
  return ShdictStatus.Ok;
}

export function shdictFlushExpired(dict: number, maxCount: number): number {
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  const now = nowMs();
  let removed = 0;
  // Oldest first, as C walks its LRU list from the tail.
  for (const [name, entry] of target.entries) {
    if (maxCount !== 0 && removed >= maxCount) break;
    if (!isExpired(entry, now)) continue;
    remove(target, name, entry);
    target.expired++;
    removed++;
  }
  return removed;
}

export function shdictStats(dict: number, out: Float64Array): number {
  const target = storeOf(dict);
  if (target === undefined) return ShdictStatus.Handle;
  out[ShdictStat.Capacity] = target.arenaSize;
  out[ShdictStat.Used] = target.used;
  out[ShdictStat.Items] = target.entries.size;
  out[ShdictStat.Evictions] = target.evictions;
  out[ShdictStat.Expired] = target.expired;
  out[ShdictStat.LockRecoveries] = 0;
  out[ShdictStat.Resets] = 0;
  out[ShdictStat.MaxEntry] = target.maxEntry;
  return ShdictStatus.Ok;
}

/** No lock exists in one process's Map: nothing to hold. */
export function shdictDebugHoldLock(dict: number, _holdMs: number, _dirty: number, _notifyFd: number): number {
  return storeOf(dict) === undefined ? ShdictStatus.Handle : ShdictStatus.Ok;
}
