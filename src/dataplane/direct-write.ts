// Writes that go straight to a socket's libuv handle. socket.write() walks
// Writable's state machine (write, _write, writeOrBuffer, Socket._writeGeneric,
// writeGeneric, afterWriteDispatched, onwrite) before the handle's writeBuffer;
// under callgrind that is about 4,100 instructions for a 200-byte write on
// Node 20, against about 3,050 for the handle call and its request object
// alone. A proxied request writes twice (the upstream head, the response);
// bench:instructions measured about 850 instructions a request saved on the
// bare route (under 2 %), less than twice the micro-benchmark's difference.
//
// A direct write is only made when the stream has nothing queued (nothing
// buffered, not corked, connected, a handle still open), so bytes leave in the
// order they were written: Writable passes its own later writes to the same
// handle, where libuv queues them behind ours, and a shutdown waits for them too.
// Otherwise, or when Node does not expose what this needs, callers write
// through the stream as before. WriteWrap comes from process.binding(), which
// Node deprecates (DEP0111, documentation-only in Node 20): should it go,
// directWritesAvailable turns false, every write takes the stream, and a test
// that asserts availability fails so the loss is seen.

import type * as net from 'node:net';
import * as util from 'node:util';

const enum Direct {
  /** The kernel took every byte. */
  Written = 0,
  /** libuv holds some bytes still: the buffer must stay untouched until they are written. */
  Queued = 1,
  /** Not made: write through the stream. */
  Refused = 2,
}

/** Node's WriteWrap request object, as lib/internal/stream_base_commons.js fills it in. */
interface WriteRequest {
  handle: StreamHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  writes: DirectWrites | null;
}

interface StreamHandle {
  writeBuffer(req: WriteRequest, data: Buffer): number;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteRequest;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function loadStreamWrap(): StreamWrapBinding | null {
  try {
    const binding = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding(
      'stream_wrap',
    );
    if (
      typeof binding.WriteWrap !== 'function' ||
      !(binding.streamBaseState instanceof Int32Array) ||
      typeof binding.kLastWriteWasAsync !== 'number'
    ) {
      return null;
    }
    return binding as StreamWrapBinding;
  } catch {
    return null;
  }
}

const streamWrap = loadStreamWrap();

/** Whether this Node lets writes skip the stream; tests assert it, so a Node change that breaks it shows. */
export const directWritesAvailable = streamWrap !== null;

/** What Writable reads to decide whether a write may go out at once; all public or long-standing fields. */
// Not `destroyed` or `writable`: their getters read a symbol-keyed bit field in a
// load V8 sees as megamorphic, about 180 instructions each. A destroyed socket has
// no handle any more, and a write after end() fails with EPIPE once the shutdown
// is queued, which destroys the socket here as the stream's own error would there.
interface SocketState {
  readonly _handle: Partial<StreamHandle> | null;
  readonly connecting: boolean;
  readonly writableLength: number;
  readonly writableCorked: number;
}

function onWriteComplete(this: WriteRequest, status: number): void {
  const writes = this.writes;
  this.buffer = null;
  this.writes = null;
  writes?.completed(status);
}

/** Direct writes to one socket, and the count libuv still holds. */
export class DirectWrites {
  /** Direct writes not yet complete: their buffers are still being read. */
  private pending = 0;
  private readonly socket: net.Socket;
  /** Runs when the last pending write completes. */
  private readonly drained: () => void;

  constructor(socket: net.Socket, drained: () => void) {
    this.socket = socket;
    this.drained = drained;
  }

  /**
   * Write `data`, to the handle when nothing is queued before it, else through
   * the stream. False, as socket.write() says it: wait before writing more, for
   * `drained` (a direct write) or the socket's 'drain' event (a stream write).
   * Either way, bytes still queued may point into `data` (see `queued`).
   */
  send(data: Buffer): boolean {
    const direct = this.write(data);
    return direct === Direct.Refused ? this.socket.write(data) : direct === Direct.Written;
  }

  /**
   * Whether bytes written are still waiting to leave (directly, or through an
   * uncorked stream), so the buffers they came from must not be reused yet.
   */
  get queued(): boolean {
    return this.pending > 0 || (this.socket.writableLength > 0 && this.socket.writableCorked === 0);
  }

  private write(data: Buffer): Direct {
    const state = this.socket as unknown as SocketState;
    const handle = state._handle;
    if (
      streamWrap === null ||
      handle === null ||
      typeof handle.writeBuffer !== 'function' ||
      state.connecting ||
      state.writableLength !== 0 ||
      state.writableCorked !== 0
    ) {
      return Direct.Refused;
    }
    const req = new streamWrap.WriteWrap();
    req.handle = handle as StreamHandle;
    req.oncomplete = onWriteComplete;
    req.async = false;
    req.bytes = 0;
    req.buffer = null;
    req.writes = null;
    const err = handle.writeBuffer(req, data);
    if (err !== 0) {
      // As the stream would: the socket is destroyed with the error, and its close handling follows.
      this.socket.destroy(writeError(err));
      return Direct.Written;
    }
    if (streamWrap.streamBaseState[streamWrap.kLastWriteWasAsync] === 0) return Direct.Written;
    req.async = true;
    req.buffer = data; // held until the write completes
    req.writes = this;
    this.pending++;
    return Direct.Queued;
  }

  /** libuv finished a queued write. */
  completed(status: number): void {
    this.pending--;
    if (status < 0) {
      this.socket.destroy(writeError(status));
      return;
    }
    if (this.pending === 0) this.drained();
  }
}

function writeError(code: number): Error {
  const name = util.getSystemErrorName(code);
  return Object.assign(new Error(`write ${name}`), { code: name, errno: code, syscall: 'write' });
}
