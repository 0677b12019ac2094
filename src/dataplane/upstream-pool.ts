// Keep-alive connections to upstream nodes: one pool per compiled upstream,
// idle sockets kept per node address, bounded in number, age and reuse count.

import * as net from 'node:net';
import type { BalancerNode } from './balancer';
import { DirectWrites } from './direct-write';

export interface UpstreamPoolSettings {
  /** Idle sockets kept per node (keepalive_pool.size). */
  size: number;
  /** keepalive_pool.idle_timeout in ms. */
  idleTimeoutMs: number;
  /** Requests after which a connection is closed instead of reused (keepalive_pool.requests). */
  maxRequests: number;
}

/** Receives the events of the connection it currently owns. */
export interface UpstreamHandler {
  onUpstreamConnect(conn: UpstreamConnection): void;
  /** `chunk` is a view of the connection's read buffer: see UpstreamConnection. */
  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void;
  onUpstreamDrain(conn: UpstreamConnection): void;
  onUpstreamClose(conn: UpstreamConnection, error: Error | undefined): void;
}

/** Bytes one upstream read can deliver; larger responses arrive over several reads. */
const READ_BUFFER_BYTES = 16 * 1024;

/**
 * Free bytes kept in front of every read. Header lines a plugin adds to a
 * response (X-RateLimit-*) are written there, right after the status line,
 * which moves left to make room: the head and the body then leave in one write
 * straight from the read buffer, with nothing copied (insertAfterStatusLine).
 */
export const READ_HEADROOM = 1024;

/**
 * Full reads in a row after which a connection stops reading until the next
 * event-loop turn. libuv reads a readable socket up to 32 times in one callback
 * while each read fills the buffer (512 KiB), and every other request of the
 * worker waits behind that loop: a 1 MiB body held for gzip was read 15 to 28
 * chunks at a time, 0.6 to 0.8 ms of CPU in one turn (the copy into the held
 * body included). Four 16 KiB reads are about a quarter of that.
 */
export const FULL_READS_PER_TURN = 4;

/**
 * The most one read puts straight into a body held whole (readInto): the
 * kernel copies into the body's own buffer, so no copy follows in JS. With
 * FULL_READS_PER_TURN, one event-loop turn takes in at most 256 KiB of it.
 */
const DIRECT_READ_BYTES = 64 * 1024;

/**
 * One socket to one node. Its listeners are installed once and forward to the
 * current handler, so handing a pooled socket to a new request costs an
 * assignment, not listener churn.
 *
 * Reads land in a buffer owned by the connection (net's `onread`), not in a
 * fresh 64 KiB allocation per read as the stream API does: that allocation
 * and the stream machinery around it were a large share of per-request cost.
 * The chunk handed to `onUpstreamData` is therefore a view that the next read
 * overwrites. A handler that keeps it past the call (stores it, or writes it
 * to a socket whose queue did not flush at once) calls `keepReadBuffer()`,
 * and the next read goes to a new buffer.
 */
export class UpstreamConnection {
  readonly socket: net.Socket;
  /** Writes to the upstream: to the socket's handle when nothing is queued (see direct-write.ts). */
  readonly writes: DirectWrites;
  readonly node: BalancerNode;
  readonly pool: UpstreamPool;
  handler: UpstreamHandler | null;
  /** Requests sent on this socket so far, the current one included. */
  requests: number;
  idleSince: number;
  connected: boolean;
  closed: boolean;
  error: Error | undefined;
  /** READ_HEADROOM free bytes, then `readView`, where reads land. */
  private readBuffer: Buffer;
  private readView: Buffer;
  /** Set by readInto(): the unfilled rest of a held body, where reads land instead of readView. */
  private target: Buffer | null;
  /** The buffer handed to net for the read in progress. */
  private landing: Buffer;
  /** Reads in a row that filled the read buffer; a shorter read ends libuv's read loop and resets it. */
  private fullReads: number;
  private readonly resumeReading: () => void;

  constructor(pool: UpstreamPool, node: BalancerNode, handler: UpstreamHandler) {
    this.pool = pool;
    this.node = node;
    this.handler = handler;
    this.requests = 1;
    this.idleSince = 0;
    this.connected = false;
    this.closed = false;
    this.error = undefined;
    this.readBuffer = Buffer.allocUnsafe(READ_HEADROOM + READ_BUFFER_BYTES);
    this.readView = this.readBuffer.subarray(READ_HEADROOM);
    this.target = null;
    this.landing = this.readView;
    this.fullReads = 0;
    // One closure per connection, so a yield allocates nothing.
    this.resumeReading = () => {
      // A handler that paused the socket meanwhile (client backpressure) resumes it itself.
      if (!this.closed && !this.socket.isPaused()) this.socket.resume();
    };
    const socket = net.connect({
      host: node.host,
      port: node.port,
      // A generator, not a fixed buffer: net asks it for the next read's buffer after every read.
      onread: { buffer: () => this.nextLanding(), callback: (length) => this.onRead(length) },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    // Never what keeps the process alive: a request in flight has its client socket for that, and an idle pooled
    // socket must not. Set once here rather than ref/unref at every acquire and release (about 600 instructions a
    // request, with a megamorphic load in Socket.unref).
    socket.unref();
    socket.on('connect', () => {
      this.connected = true;
      this.handler?.onUpstreamConnect(this);
    });
    // A write through the stream drains with 'drain', a direct one through DirectWrites.
    const drained = () => this.handler?.onUpstreamDrain(this);
    socket.on('drain', drained);
    this.writes = new DirectWrites(socket, drained);
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
      this.pool.forget(this);
      const handler = this.handler;
      this.handler = null;
      handler?.onUpstreamClose(this, this.error);
    });
  }

  /**
   * net's onread callback: `length` bytes are at the start of `landing`.
   * Returning false stops reading (net calls readStop); after
   * FULL_READS_PER_TURN full reads in a row, reading starts again on the next
   * turn, so a large body is read in slices between other requests' callbacks.
   */
  private onRead(length: number): boolean {
    const handler = this.handler;
    if (handler === null) {
      this.socket.destroy(); // bytes on an idle keep-alive socket: it can no longer be trusted
      return false;
    }
    const landing = this.landing;
    const full = length === landing.length;
    if (this.target !== null) this.target = length < this.target.length ? this.target.subarray(length) : null;
    handler.onUpstreamData(this, landing.subarray(0, length));
    if (!full) {
      this.fullReads = 0;
      return true;
    }
    if (++this.fullReads < FULL_READS_PER_TURN) return true;
    this.fullReads = 0;
    setImmediate(this.resumeReading);
    return false;
  }

  /** net asks for the buffer of the next read after every read. */
  private nextLanding(): Buffer {
    const target = this.target;
    this.landing =
      target === null
        ? this.readView
        : target.length <= DIRECT_READ_BYTES
          ? target
          : target.subarray(0, DIRECT_READ_BYTES);
    return this.landing;
  }

  /**
   * Read the next bytes straight into `target` (the rest of a response body
   * held whole, at most as long as what is still to come, so no byte of
   * another response lands there) until it is full; null to stop. The chunk
   * handed to the handler is then a view of `target`.
   */
  readInto(target: Buffer | null): void {
    this.target = target !== null && target.length > 0 ? target : null;
  }

  /** The last chunk stays referenced: read the next one into a new buffer. */
  keepReadBuffer(): void {
    this.readBuffer = Buffer.allocUnsafe(READ_HEADROOM + READ_BUFFER_BYTES);
    this.readView = this.readBuffer.subarray(READ_HEADROOM);
  }

  /**
   * The buffer the last read landed in, at READ_HEADROOM, with the free bytes
   * in front of it; its contents are valid only until the next read, like the chunk.
   */
  get headroomBuffer(): Buffer {
    return this.readBuffer;
  }

  destroy(): void {
    this.handler = null;
    this.socket.destroy();
  }
}

export class UpstreamPool {
  readonly settings: UpstreamPoolSettings;
  private readonly idle = new Map<string, UpstreamConnection[]>();
  private retired = false;

  constructor(settings: UpstreamPoolSettings) {
    this.settings = settings;
  }

  /** An idle connection to `node`, or null when there is none. */
  acquire(node: BalancerNode, handler: UpstreamHandler): UpstreamConnection | null {
    const list = this.idle.get(node.address);
    if (list === undefined) return null;
    let conn = list.pop();
    while (conn !== undefined && conn.closed) conn = list.pop();
    if (conn === undefined) return null;
    conn.handler = handler;
    conn.requests++;
    return conn;
  }

  /** A new connection to `node`; `handler.onUpstreamConnect` fires when it is up. */
  connect(node: BalancerNode, handler: UpstreamHandler): UpstreamConnection {
    return new UpstreamConnection(this, node, handler);
  }

  /** Give a connection back after a cleanly finished exchange (or close it when it may not be kept). */
  release(conn: UpstreamConnection, now: number): void {
    conn.readInto(null);
    conn.handler = null;
    if (this.retired || conn.closed || conn.requests >= this.settings.maxRequests) {
      conn.destroy();
      return;
    }
    let list = this.idle.get(conn.node.address);
    if (list === undefined) {
      list = [];
      this.idle.set(conn.node.address, list);
    }
    if (list.length >= this.settings.size) {
      conn.destroy();
      return;
    }
    conn.idleSince = now;
    list.push(conn);
  }

  /** Drop a closed connection from the idle lists. */
  forget(conn: UpstreamConnection): void {
    const list = this.idle.get(conn.node.address);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
  }

  /** Close idle connections older than the idle timeout. */
  sweep(now: number): void {
    const limit = now - this.settings.idleTimeoutMs;
    for (const list of this.idle.values()) {
      // Oldest first: release pushes at the end.
      while (list.length > 0 && list[0].idleSince <= limit) list.shift()!.destroy();
    }
  }

  /** Number of idle connections (all nodes). */
  get idleCount(): number {
    let count = 0;
    for (const list of this.idle.values()) count += list.length;
    return count;
  }

  /** Close every idle connection; connections released later are closed too. */
  retire(): void {
    this.retired = true;
    this.closeIdle();
  }

  closeIdle(): void {
    for (const list of this.idle.values()) {
      for (const conn of list.splice(0)) conn.destroy();
    }
  }
}
