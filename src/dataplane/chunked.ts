// Decoding a chunked body (already validated by the native chunk scanner) for
// plugins that want the body itself: whole, for a request body read with
// readBody(); read by read (ChunkedDecoder), for a response body held for
// body_filter, so the end of a large body costs no decoding pass in one turn.

function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** The data of a complete chunked body; trailers are dropped. Throws on framing it cannot follow. */
export function decodeChunked(raw: Buffer): Buffer {
  const decoder = new ChunkedDecoder(raw.length);
  decoder.push(raw);
  return decoder.finish();
}

const enum DecodeState {
  Size,
  /** The rest of a size line (chunk extensions), up to its LF. */
  SizeLine,
  Data,
  /** The CR LF after a chunk's data. */
  DataEnd,
  /** After the last chunk: trailers and the final CRLF, ignored. */
  Done,
}

/**
 * A chunked body decoded as its bytes arrive, into one buffer that doubles as
 * it fills (unpooled, so it can be transferred to an offload thread).
 * Trailers are dropped. Framing it cannot follow is reported by finish().
 */
export class ChunkedDecoder {
  private state = DecodeState.Size;
  private failed = false;
  private size = 0;
  private digits = 0;
  private body: Buffer;
  private length = 0;

  constructor(initialCapacity = 16 * 1024) {
    this.body = Buffer.allocUnsafeSlow(initialCapacity);
  }

  /** Whether the last chunk has been seen. */
  get done(): boolean {
    return this.state === DecodeState.Done;
  }

  /** The next bytes of the body; after framing it cannot follow, the rest is ignored and finish() throws. */
  push(bytes: Buffer): void {
    if (this.failed) return;
    let pos = 0;
    const end = bytes.length;
    while (pos < end && this.state !== DecodeState.Done) {
      switch (this.state) {
        case DecodeState.Size: {
          const digit = hexDigit(bytes[pos]);
          if (digit < 0) {
            if (this.digits === 0) {
              this.failed = true;
              return;
            }
            this.state = DecodeState.SizeLine;
            break;
          }
          this.size = this.size * 16 + digit;
          this.digits++;
          pos++;
          break;
        }
        case DecodeState.SizeLine: {
          const lineEnd = bytes.indexOf(10, pos);
          if (lineEnd < 0) return;
          pos = lineEnd + 1;
          this.digits = 0;
          this.state = this.size === 0 ? DecodeState.Done : DecodeState.Data;
          break;
        }
        case DecodeState.Data: {
          const take = Math.min(this.size, end - pos);
          this.append(bytes, pos, pos + take);
          this.size -= take;
          pos += take;
          if (this.size === 0) this.state = DecodeState.DataEnd;
          break;
        }
        case DecodeState.DataEnd:
          // CR LF, as the scanner accepts it (a bare LF too).
          if (bytes[pos] === 13) {
            pos++;
          } else {
            if (bytes[pos] === 10) pos++;
            this.state = DecodeState.Size;
          }
          break;
      }
    }
  }

  /** The data of the complete body; throws when its last chunk has not come. */
  finish(): Buffer {
    if (this.failed) throw new Error('invalid chunked body');
    if (this.state !== DecodeState.Done) throw new Error('truncated chunked body');
    return this.body.subarray(0, this.length);
  }

  private append(bytes: Buffer, start: number, end: number): void {
    const needed = this.length + (end - start);
    if (needed > this.body.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.body.length * 2));
      this.body.copy(grown, 0, 0, this.length);
      this.body = grown;
    }
    bytes.copy(this.body, this.length, start, end);
    this.length = needed;
  }
}
