// Decoding a chunked body that has been received whole (and already validated
// by the native chunk scanner), for plugins that want the body itself: a
// request body read with readBody(), a response body for body_filter.

function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** The data of a complete chunked body; trailers are dropped. Throws on framing it cannot follow. */
export function decodeChunked(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  let pos = 0;
  for (;;) {
    let size = 0;
    let digits = 0;
    while (pos < raw.length) {
      const digit = hexDigit(raw[pos]);
      if (digit < 0) break;
      size = size * 16 + digit;
      digits++;
      pos++;
    }
    const lineEnd = raw.indexOf(10, pos); // chunk extensions run to the end of the line
    if (digits === 0 || lineEnd < 0) throw new Error('invalid chunked body');
    pos = lineEnd + 1;
    if (size === 0) break;
    if (pos + size > raw.length) throw new Error('truncated chunked body');
    parts.push(raw.subarray(pos, pos + size));
    total += size;
    pos += size;
    if (raw[pos] === 13) pos++;
    if (raw[pos] === 10) pos++;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
}
