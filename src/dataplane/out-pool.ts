// The arrays request heads are parsed into (out[], about 10 KB: header spans,
// matched routes and the normalised-path area). A client connection holds one
// only while it has a request: an idle keep-alive connection holds none, and
// the next request takes one from here. A finished request whose log phase is
// still to run keeps its array until then (RequestContext.heldOut), so the
// log phase reads its own head, never the next request's.

import { OUT_SIZE } from '../native/layout';

/** Free arrays kept for reuse; beyond this many, a returned array is left to the GC. */
const MAX_FREE = 256;

const free: Int32Array[] = [];

export function takeOut(): Int32Array {
  return free.pop() ?? new Int32Array(OUT_SIZE);
}

/** Give back an array nothing reads any more. */
export function returnOut(out: Int32Array): void {
  if (free.length < MAX_FREE) free.push(out);
}
