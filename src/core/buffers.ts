// What can be given away with an ArrayBuffer: a view moves (transfer) or is
// freed (OffloadPool.release) only with the whole ArrayBuffer behind it, so
// only a view that spans all of it may go. A slice of Node's shared Buffer
// pool never does: other Buffers live in the rest of it.

/** Whether `view` covers the whole of its ArrayBuffer, so moving that buffer moves nothing else. */
export function ownsWholeBuffer(view: ArrayBufferView): boolean {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
}
