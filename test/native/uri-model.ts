// A reference model of nginx's $uri (ngx_http_parse_complex_uri, merge_slashes
// on), written segment by segment rather than as a byte state machine so it
// can check native/parser.c and its TypeScript mirror independently.

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const HASH = 0x23;

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  const text = String.fromCharCode(b);
  return /^[0-9a-fA-F]$/.test(text) ? parseInt(text, 16) : -1;
}

/**
 * The normal form of a path (no query) that starts with '/', or null where
 * nginx answers 400: a bad or %00 escape, or a ".." above the root.
 */
export function referenceUri(path: Buffer): Buffer | null {
  // 1. Decode into segments. A raw '/' or a decoded %2F separates; a raw '#' ends the path.
  const segments: number[][] = [[]];
  for (let i = 0; i < path.length; i++) {
    let b = path[i];
    if (b === HASH) break;
    if (b === PERCENT) {
      const hi = hexValue(path[i + 1]);
      const lo = hexValue(path[i + 2]);
      if (hi < 0 || lo < 0) return null;
      b = hi * 16 + lo;
      if (b === 0) return null;
      i += 2;
    }
    if (b === SLASH) segments.push([]);
    else segments[segments.length - 1].push(b);
  }
  // 2. Resolve: empty and "." segments go, ".." takes the one before it away.
  const kept: number[][] = [];
  const rest = segments.slice(1); // the path starts with '/': segment 0 is empty
  for (const segment of rest) {
    const isDot = segment.length === 1 && segment[0] === DOT;
    const isDotDot = segment.length === 2 && segment[0] === DOT && segment[1] === DOT;
    if (isDotDot) {
      if (kept.length === 0) return null;
      kept.pop();
    } else if (segment.length > 0 && !isDot) {
      kept.push(segment);
    }
  }
  // 3. A path ending in '/', "/." or "/.." ends in '/'.
  const last = rest[rest.length - 1] ?? [];
  const isSpecial =
    last.length === 0 ||
    (last.length === 1 && last[0] === DOT) ||
    (last.length === 2 && last[0] === DOT && last[1] === DOT);
  const bytes: number[] = [];
  for (const segment of kept) bytes.push(SLASH, ...segment);
  if (kept.length === 0 || isSpecial) bytes.push(SLASH);
  return Buffer.from(bytes);
}
