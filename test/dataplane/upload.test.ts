// A 1 GiB upload streams through a data plane running in a child process while
// its RSS is sampled: the body must never be buffered whole.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { availableBackends } from '../helpers/backends';
import { startChild } from '../helpers/child';
import { localUpstream } from '../helpers/dataplane';
import { RawClient } from '../helpers/http-client';
import { startUpstream } from '../helpers/upstream';

const TOTAL = 1024 * 1024 * 1024;
const PIECE = Buffer.alloc(1024 * 1024, 'u');
const RSS_LIMIT = 200 * 1024 * 1024;

async function upload(client: RawClient, total: number): Promise<void> {
  let sent = 0;
  while (sent < total) {
    const ok = client.write(PIECE);
    sent += PIECE.length;
    if (!ok) await new Promise((resolve) => client.socket.once('drain', resolve));
  }
}

// One backend is enough: memory behaviour is the data plane's, not the parser's.
const backend = availableBackends().at(-1)!;

describe(`1 GiB streamed upload (${backend.name})`, () => {
  it('passes the whole body with bounded memory', { timeout: 60000 }, async (t) => {
    const upstream = await startUpstream({
      countOnly: true,
      handler: (_req, res, body) => res.end(JSON.stringify({ length: body.length })),
    });
    const gateway = await startChild<{ port: number }>(path.join(__dirname, '..', 'helpers', 'dataplane-child.js'), {
      PALISADE_TEST_BACKEND: backend.name,
      PALISADE_TEST_CONFIG: JSON.stringify({
        routes: [{ id: 'up', uri: '/upload', upstream: localUpstream([upstream.port]) }],
      }),
    });
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, gateway.rss());
    }, 50);
    try {
      const client = await RawClient.connect(gateway.ready.port);
      client.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${TOTAL}\r\n\r\n`);
      await upload(client, TOTAL);
      const res = await client.read({ timeoutMs: 30000 });
      client.close();
      assert.equal(res.status, 200);
      assert.equal(upstream.requests[0].bodyLength, TOTAL);
      t.diagnostic(`peak RSS ${Math.round(peak / 1048576)} MiB`);
      assert.ok(peak > 0, 'RSS was sampled');
      assert.ok(peak < RSS_LIMIT, `peak RSS ${Math.round(peak / 1048576)} MiB`);
    } finally {
      clearInterval(sampler);
      await gateway.stop();
      await upstream.close();
    }
  });
});
