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
