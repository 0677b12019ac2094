// The upstream read path under a body that is held for an offloaded filter
// (gzip of 1 MiB): the connection reads at most FULL_READS_PER_TURN full
// buffers before the event loop gets a turn, so other requests' callbacks run
// between the slices. These tests count reads per event-loop turn (a turn ends
// at its setImmediate), not time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as net from 'node:net';

import type { BalancerNode } from '../../../src/dataplane/balancer';
import {
  FULL_READS_PER_TURN,
  UpstreamPool,
  type UpstreamConnection,
  type UpstreamHandler,
} from '../../../src/dataplane/upstream-pool';

const BODY = Buffer.alloc(2 * 1024 * 1024);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + (i >>> 11)) & 0xff;
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');
const BLOCK_AFTER = 256 * 1024;

/**
 * Block this thread, so the upstream's bytes pile up in the socket and the next reads fill the buffer. Done once
 * BLOCK_AFTER bytes have arrived: by then the kernel has grown the receive window well past a few reads.
 */
function blockFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy on purpose
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Counts reads per event-loop turn: the first read of a turn schedules the immediate that closes it. */
class TurnCounter {
  readsThisTurn = 0;
  mostReadsInATurn = 0;
  private open = false;

  read(): void {
    if (!this.open) {
      this.open = true;
      setImmediate(() => {
        this.open = false;
        this.readsThisTurn = 0;
      });
    }
    this.readsThisTurn++;
    if (this.readsThisTurn > this.mostReadsInATurn) this.mostReadsInATurn = this.readsThisTurn;
  }
}

interface Exchange {
  readonly done: Promise<void>;
  readonly hash: ReturnType<typeof createHash>;
  received: number;
}

describe('upstream reads of a large body', () => {
  let server: net.Server;
  let node: BalancerNode;
  const pool = new UpstreamPool({ size: 4, idleTimeoutMs: 60_000, maxRequests: 100 });

  before(async () => {
    // Sends BODY once the client writes a byte.
    server = net.createServer((socket) => {
      socket.once('data', () => socket.end(BODY));
      socket.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    node = { host: '127.0.0.1', port, weight: 1, priority: 0, address: `127.0.0.1:${port}` };
  });

  after(async () => {
    pool.retire();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** One exchange; `onChunk` runs after each read is counted and hashed. */
  function exchange(onChunk: (conn: UpstreamConnection, chunk: Buffer, exchange: Exchange) => void): Exchange {
    let finish!: () => void;
    let fail!: (err: Error) => void;
    const state: Exchange = {
      done: new Promise<void>((resolve, reject) => {
        finish = resolve;
        fail = reject;
      }),
      hash: createHash('sha256'),
      received: 0,
    };
    const handler: UpstreamHandler = {
      onUpstreamConnect: (conn) => conn.socket.write('go'),
      onUpstreamData: (conn, chunk) => {
        state.hash.update(chunk);
        state.received += chunk.length;
        onChunk(conn, chunk, state);
        if (state.received === BODY.length) {
          pool.release(conn, Date.now());
          finish();
        }
      },
      onUpstreamDrain: () => {},
      onUpstreamClose: (_conn, error) => {
        if (state.received !== BODY.length) fail(error ?? new Error(`closed after ${state.received} bytes`));
      },
    };
    pool.connect(node, handler);
    return state;
  }

  it(
    'yields to the event loop after a few full reads, and the body arrives whole and in order',
    { timeout: 10_000 },
    async () => {
      const turns = new TurnCounter();
      let blocked = false;
      const body = exchange((_conn, _chunk, state) => {
        turns.read();
        if (!blocked && state.received >= BLOCK_AFTER) {
          blocked = true;
          blockFor(30); // the rest of the body piles up: what libuv would read in one long loop
        }
      });
      await body.done;
      assert.equal(body.received, BODY.length);
      assert.equal(body.hash.digest('hex'), BODY_SHA);
      assert.equal(turns.mostReadsInATurn, FULL_READS_PER_TURN, 'some turns read the most allowed, none more');
    },
  );

  it(
    'leaves a socket paused by its handler paused when reading would resume after a yield',
    { timeout: 10_000 },
    async () => {
      let blocked = false;
      let paused = 0;
      let readWhilePaused = 0;
      let isPaused = false;
      const body = exchange((conn, _chunk, state) => {
        if (isPaused) readWhilePaused++;
        if (!blocked) {
          if (state.received < BLOCK_AFTER) return;
          blocked = true;
          blockFor(30);
          return;
        }
        // Pause on 2 * FULL_READS_PER_TURN reads in a row, so at least one of them is a read that yields.
        if (paused >= 2 * FULL_READS_PER_TURN) return;
        paused++;
        isPaused = true;
        conn.socket.pause(); // as the data plane does while the client is slow to take bytes
        setTimeout(() => {
          isPaused = false;
          conn.socket.resume();
        }, 20);
      });
      await body.done;
      assert.equal(paused, 2 * FULL_READS_PER_TURN);
      assert.equal(readWhilePaused, 0, 'no read while the handler had the socket paused');
      assert.equal(body.hash.digest('hex'), BODY_SHA);
    },
  );

  it('keeps reading a connection released to the pool while its reads were yielding', { timeout: 10_000 }, async () => {
    // Whether or not the last read of the body yielded, the idle socket keeps reading and sees the upstream close it.
    const body = exchange(() => {});
    await body.done;
    await nextTurn();
    await nextTurn();
    assert.equal(pool.idleCount, 1);
    const closed = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (pool.idleCount === 0) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    // The upstream ended its side after the body (socket.end): the pooled socket sees EOF and leaves the pool.
    await closed;
    assert.equal(pool.idleCount, 0);
  });
});
