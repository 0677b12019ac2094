import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ByteArena } from '../../../src/plugins/lib/byte-arena';

describe('ByteArena', () => {
  it('appends bytes and UTF-8 text, grows past its capacity and keeps what was written', () => {
    const arena = new ByteArena(1024);
    arena.appendText('héllo ');
    arena.append(Buffer.from('world'));
    assert.equal(arena.view().toString(), 'héllo world');
    assert.equal(arena.length, 12);
    const long = 'x'.repeat(5000);
    arena.appendText(long);
    assert.equal(arena.view().toString(), 'héllo world' + long);
    assert.equal(arena.view(7, 12).toString(), 'world');
    assert.equal(arena.view(7, 1e9).length, arena.length - 7, 'a view ends at the length');
  });

  it('writes multi-byte text whole at the edge of its capacity, growing only when the bytes need it', () => {
    const arena = new ByteArena(1024);
    arena.appendText('€'.repeat(340)); // 1,020 bytes: within the 3-bytes-per-unit bound, encoded without measuring
    const before = arena.view().buffer;
    arena.appendText('ab'); // the bound (6) is past the 4 bytes left: measured, fits without growing
    assert.equal(arena.view().buffer, before, 'no growth for bytes that fit');
    arena.appendText('€€'); // 6 bytes with 2 left: grows, nothing cut
    assert.equal(arena.view().toString(), '€'.repeat(340) + 'ab€€');
    assert.equal(arena.length, 1028);
  });

  it('writes from the start again after reset(), in the same memory', () => {
    const arena = new ByteArena(2048);
    arena.appendText('a'.repeat(1500));
    const first = arena.view();
    arena.reset();
    assert.equal(arena.length, 0);
    arena.appendText('b'.repeat(1500));
    assert.equal(arena.view().toString(), 'b'.repeat(1500));
    assert.equal(first.buffer, arena.view().buffer, 'no new allocation');
  });
});
