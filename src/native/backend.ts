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
}
