// ChunkedDecoder (a held chunked response body decoded read by read, and a
// whole body through decodeChunked) gives each body's data wherever the reads
// split it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedDecoder, decodeChunked } from '../../src/dataplane/chunked';

/** Chunked bodies and their data: extensions, trailers and bare LF line ends included. */
const BODIES: Array<[string, string]> = [
  ['0\r\n\r\n', ''],
  ['3\r\nabc\r\n0\r\n\r\n', 'abc'],
  ['3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n', 'abc0123456789'],
  ['1\nx\n2\nyz\n0\n\n', 'xyz'],
  ['f\r\nfifteen bytes!!\r\n01\r\n-\r\n0\r\n\r\n', 'fifteen bytes!!-'],
];

function decodeIn(pieces: Buffer[], capacity?: number): Buffer {
  const decoder = new ChunkedDecoder(capacity);
  for (const piece of pieces) decoder.push(piece);
  return decoder.finish();
}

describe('ChunkedDecoder', () => {
  it('decodes every body wherever it is split in two or three, and whole (decodeChunked)', () => {
    for (const [text, data] of BODIES) {
      const raw = Buffer.from(text, 'latin1');
      const whole = Buffer.from(data, 'latin1');
      assert.deepEqual(decodeChunked(raw), whole, JSON.stringify(text));
      for (let a = 0; a <= raw.length; a++) {
        assert.deepEqual(decodeIn([raw.subarray(0, a), raw.subarray(a)], 1), whole, `${JSON.stringify(text)} at ${a}`);
        for (let b = a; b <= raw.length; b++) {
          const pieces = [raw.subarray(0, a), raw.subarray(a, b), raw.subarray(b)];
          assert.deepEqual(decodeIn(pieces, 2), whole, `${JSON.stringify(text)} at ${a}, ${b}`);
        }
      }
    }
  });

  it('grows past its first buffer, byte for byte', () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const raw = Buffer.concat([
      Buffer.from('186a0\r\n'),
      data.subarray(0, 100_000),
      Buffer.from('\r\n30d40\r\n'),
      data.subarray(100_000),
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const pieces: Buffer[] = [];
    for (let at = 0; at < raw.length; at += 16_384) pieces.push(raw.subarray(at, at + 16_384));
    assert.ok(decodeIn(pieces).equals(data));
  });

  it('reports a body without its last chunk, or with framing it cannot follow, at finish()', () => {
    assert.throws(() => decodeIn([Buffer.from('5\r\nab')]), /truncated/);
    assert.throws(() => decodeIn([Buffer.from('5\r\nabcde\r\n')]), /truncated/);
    assert.throws(() => decodeIn([]), /truncated/);
    assert.throws(() => decodeIn([Buffer.from('zz\r\n')]), /invalid/);
    const decoder = new ChunkedDecoder();
    decoder.push(Buffer.from('3\r\nabc\r\n0\r\n\r\n'));
    assert.equal(decoder.done, true);
    decoder.push(Buffer.from('ignored'));
    assert.equal(decoder.finish().toString(), 'abc');
  });
});
