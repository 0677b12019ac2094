// A raw-socket HTTP/1.1 client for tests: writes exactly the bytes given and
// reads responses off the stream one at a time, so keep-alive, pipelining and
// malformed requests can be exercised without a client library in the way.
import * as net from 'node:net';

export interface RawResponse {
  status: number;
  reason: string;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Header lines as received, in order. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  /** Interim (1xx) responses seen before this one. */
  interim: number[];
}

export interface ReadOptions {
  /** The request was HEAD: no body whatever the headers say. */
  head?: boolean;
  timeoutMs?: number;
}

export class RawClient {
  readonly socket: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private closed = false;
  private waiter: (() => void) | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.ended = true;
      this.wake();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Whether the server closed (FIN or reset). */
  get isEnded(): boolean {
    return this.ended;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(data: string | Buffer): boolean {
    return this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  private async waitMore(deadline: number): Promise<void> {
    if (this.ended)
      throw new Error(`connection closed; buffered: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 200))}`);
    const left = deadline - Date.now();
    if (left <= 0)
      throw new Error(`timed out; buffered: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 200))}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Read one complete response (skipping and recording 1xx ones). */
  async read(options: ReadOptions = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    const interim: number[] = [];
    for (;;) {
      let headEnd = this.buffer.indexOf('\r\n\r\n');
      while (headEnd < 0) {
        await this.waitMore(deadline);
        headEnd = this.buffer.indexOf('\r\n\r\n');
      }
      const lines = this.buffer.toString('latin1', 0, headEnd).split('\r\n');
      const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
      if (!match) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
      const status = Number(match[1]);
      const rawHeaders: Array<[string, string]> = [];
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon);
        const value = line.slice(colon + 1).trim();
        rawHeaders.push([name, value]);
        const key = name.toLowerCase();
        headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
      }
      this.buffer = this.buffer.subarray(headEnd + 4);
      if (status >= 100 && status < 200 && status !== 101) {
        interim.push(status);
        continue;
      }
      let body: Buffer;
      if (options.head || status === 204 || status === 304 || status === 101) {
        body = Buffer.alloc(0);
      } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
        body = await this.readChunked(deadline);
      } else if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        while (this.buffer.length < length) await this.waitMore(deadline);
        body = this.buffer.subarray(0, length);
        this.buffer = this.buffer.subarray(length);
      } else {
        while (!this.ended) await this.waitMore(deadline).catch(() => undefined);
        body = this.buffer;
        this.buffer = Buffer.alloc(0);
      }
      return { status, reason: match[2], headers, rawHeaders, body, interim };
    }
  }

  private async readChunked(deadline: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      let lineEnd = this.buffer.indexOf('\r\n');
      while (lineEnd < 0) {
        await this.waitMore(deadline);
        lineEnd = this.buffer.indexOf('\r\n');
      }
      const size = parseInt(this.buffer.toString('latin1', 0, lineEnd).split(';')[0], 16);
      if (size === 0) {
        let end = this.buffer.indexOf('\r\n\r\n', lineEnd - 2 >= 0 ? lineEnd - 2 : 0);
        while (end < 0) {
          await this.waitMore(deadline);
          end = this.buffer.indexOf('\r\n\r\n', lineEnd - 2 >= 0 ? lineEnd - 2 : 0);
        }
        this.buffer = this.buffer.subarray(end + 4);
        return Buffer.concat(parts);
      }
      while (this.buffer.length < lineEnd + 2 + size + 2) await this.waitMore(deadline);
      parts.push(Buffer.from(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size)));
      this.buffer = this.buffer.subarray(lineEnd + 2 + size + 2);
    }
  }

  /** Resolve once the server has closed the connection (rejects after the timeout). */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() >= deadline) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Everything buffered and not read as a response yet. */
  get unread(): Buffer {
    return this.buffer;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Open a connection, send `data`, read one response, close. */
export async function rawRequest(port: number, data: string | Buffer, options: ReadOptions = {}): Promise<RawResponse> {
  const client = await RawClient.connect(port);
  try {
    client.write(data);
    return await client.read(options);
  } finally {
    client.close();
  }
}
