// The one interface every native backend implements. The data plane only ever
// talks to this; `ffi` (koffi), `napi` (node-addon-api) and `js` (pure
// TypeScript) are interchangeable behind it.

export type BackendName = 'ffi' | 'napi' | 'js';

export interface NativeBackend {
  readonly name: BackendName;

  /**
   * Parse the request head in buf[off, off+len) and, when router >= 0, match
   * it against that route table. `ip` holds the client address as 4 or 16
   * bytes. Results go into `out` (Int32Array of OUT_SIZE). Returns the head
   * length (> 0), 0 when incomplete, or a negative ParseError.
   */
  parseRequest(buf: Buffer, off: number, len: number, router: number, ip: Buffer, out: Int32Array): number;

  /** Parse a response head answering a request with method code `reqMethod`. */
  parseResponse(buf: Buffer, off: number, len: number, reqMethod: number, out: Int32Array): number;

  /**
   * Scan chunked-body bytes with `state` (Int32Array of CHUNK_STATE_SIZE,
   * zeroed at message start). Returns bytes consumed or a negative ParseError;
   * state[Chunk.Done] becomes 1 at the end of the message.
   */
  chunkedScan(buf: Buffer, off: number, len: number, state: Int32Array): number;

  /** Build a route table from a spec (see src/native/router-spec.ts). Returns a handle >= 0. */
  routerBuild(spec: Buffer): number;

  routerFree(router: number): void;

  // ---- shared dictionary (native/shdict.c). A dict is a handle >= 0; calls
  // return >= 0 on success or a negative ShdictStatus. Keys are key[0, keyLen)
  // (keyLen <= key.length), TTLs are ms with 0 = never, and results go into `out`
  // (Float64Array of SHDICT_OUT_SIZE, slots ShdictOut / ShdictStat). In `js` a
  // dictionary is per process: other processes do not see it.

  /** Open or create (capacity > 0) the dictionary file at `path`; capacity 0 opens an existing one. */
  shdictOpen(path: Buffer, capacity: number, flags: number): number;
  shdictClose(dict: number): number;
  /** Copies a bytes value into `value` (NotFound, or Buffer when value.length is too small). */
  shdictGet(dict: number, key: Buffer, keyLen: number, value: Buffer, out: Float64Array): number;
  /** mode: ShdictMode. Stores value[0, valueLen). */
  shdictStore(
    dict: number,
    mode: number,
    key: Buffer,
    keyLen: number,
    value: Buffer,
    valueLen: number,
    ttlMs: number,
    flags: number,
  ): number;
  shdictStoreNumber(
    dict: number,
    mode: number,
    key: Buffer,
    keyLen: number,
    value: number,
    ttlMs: number,
    flags: number,
  ): number;
  /** Atomic add; out[ShdictOut.Number] = the new value. A missing key starts at init when hasInit is 1. */
  shdictIncr(
    dict: number,
    key: Buffer,
    keyLen: number,
    delta: number,
    init: number,
    initTtlMs: number,
    hasInit: number,
    out: Float64Array,
  ): number;
  shdictDelete(dict: number, key: Buffer, keyLen: number): number;
  shdictExpire(dict: number, key: Buffer, keyLen: number, ttlMs: number): number;
  shdictTtl(dict: number, key: Buffer, keyLen: number, out: Float64Array): number;
  shdictFlushAll(dict: number): number;
  /** Removes up to maxCount expired entries (0 = all); returns how many. */
  shdictFlushExpired(dict: number, maxCount: number): number;
  shdictStats(dict: number, out: Float64Array): number;
  /**
   * Tests only: take the dictionary's lock (marking a change in progress when
   * dirty is 1), write "locked\n" to file descriptor notifyFd (unless < 0), hold
   * it holdMs (< 0: until the process is killed), release. A no-op in `js`.
   */
  shdictDebugHoldLock(dict: number, holdMs: number, dirty: number, notifyFd: number): number;
}
