import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';

import gzip, { INLINE_GZIP_LIMIT, MAX_HELD_BODY } from '../../../src/plugins/builtin/gzip';
import { OffloadRefusedError } from '../../../src/plugins/offload';
import { checkPluginConf, compilePluginConf, testContext, type TestRequest } from '../support/test-context';

const compressible = (): TestRequest => ({
  headers: { 'accept-encoding': 'deflate, gzip;q=0.8' },
  responseHeaders: { 'content-type': 'application/json; charset=utf-8', 'content-length': '5000', etag: '"v1"' },
  tasks: gzip.tasks,
});

describe('gzip', () => {
  it('compresses a small body inline and sets the response headers', async () => {
    const conf = compilePluginConf(gzip, { types: ['application/json'], vary: true, comp_level: 6 });
    const ctx = testContext(compressible());
    gzip.header_filter!(conf, ctx);
    assert.equal(ctx.responseHeader('content-encoding'), 'gzip');
    assert.equal(ctx.responseHeader('content-length'), undefined);
    assert.equal(ctx.responseHeader('vary'), 'Accept-Encoding');
    assert.equal(ctx.responseHeader('etag'), 'W/"v1"');
    const body = Buffer.from('{"a":1}'.repeat(100));
    const compressed = await gzip.body_filter!(conf, ctx, body);
    assert.deepEqual(gunzipSync(compressed!), body);
    assert.equal(ctx.offloads.length, 0);
  });

  it('compresses a large body through the offload task, transferring an owned copy', async () => {
    const conf = compilePluginConf(gzip, { types: '*' });
    const ctx = testContext(compressible());
    gzip.header_filter!(conf, ctx);
    // A slice of a larger buffer: the plugin must not hand the whole ArrayBuffer over.
    const backing = Buffer.alloc(INLINE_GZIP_LIMIT * 4, 'abc');
    const body = backing.subarray(10, 10 + INLINE_GZIP_LIMIT * 2);
    const compressed = await gzip.body_filter!(conf, ctx, body);
    assert.equal(ctx.offloads.length, 1);
    assert.equal(ctx.offloads[0].task, 'gzip');
    const payload = ctx.offloads[0].payload as { body: Uint8Array; level: number };
    assert.equal(payload.level, 1);
    assert.equal(payload.body.byteLength, payload.body.buffer.byteLength);
    assert.deepEqual(gunzipSync(compressed!), Buffer.from(body));
  });

  it('sends the body uncompressed, headers as the upstream sent them, when the offload pool refuses the task', async () => {
    const conf = compilePluginConf(gzip, { types: '*', vary: true });
    const refused = (): never => {
      throw new OffloadRefusedError('offload queue is full (1024 tasks waiting)');
    };
    const ctx = testContext({ ...compressible(), tasks: { gzip: refused } });
    gzip.header_filter!(conf, ctx);
    assert.equal(ctx.responseHeader('content-encoding'), 'gzip');
    const body = Buffer.alloc(INLINE_GZIP_LIMIT * 2, 'abc');
    const sent = await gzip.body_filter!(conf, ctx, body);
    assert.equal(sent, body);
    assert.equal(ctx.responseHeader('content-encoding'), undefined);
    assert.equal(ctx.responseHeader('etag'), '"v1"');
    assert.equal(ctx.responseHeader('vary'), 'Accept-Encoding');

    // Any other failure of the task is the request's failure.
    const broken = testContext({ ...compressible(), tasks: { gzip: () => Promise.reject(new Error('zlib broke')) } });
    gzip.header_filter!(conf, broken);
    await assert.rejects(Promise.resolve(gzip.body_filter!(conf, broken, body)), /zlib broke/);
  });

  it('skips clients without gzip, q=0, other types, short and over-long bodies, encoded bodies, HEAD and other statuses', () => {
    const conf = compilePluginConf(gzip, { types: ['application/json'], min_length: 100 });
    const cases: TestRequest[] = [
      { ...compressible(), headers: {} },
      { ...compressible(), headers: { 'accept-encoding': 'gzip;q=0' } },
      { ...compressible(), responseHeaders: { 'content-type': 'image/png' } },
      { ...compressible(), responseHeaders: { 'content-type': 'application/json', 'content-length': '99' } },
      // Longer than the data plane holds for body_filter: it would stream through uncompressed.
      {
        ...compressible(),
        responseHeaders: { 'content-type': 'application/json', 'content-length': String(MAX_HELD_BODY + 1) },
      },
      { ...compressible(), responseHeaders: { 'content-type': 'application/json', 'content-encoding': 'br' } },
      { ...compressible(), method: 'HEAD' },
      { ...compressible(), status: 500 },
      { ...compressible(), vars: { server_protocol: 'HTTP/1.0' } },
    ];
    for (const request of cases) {
      const ctx = testContext(request);
      gzip.header_filter!(conf, ctx);
      assert.equal(ctx.responseHeader('content-encoding'), request.responseHeaders?.['content-encoding']);
    }
  });

  it('always compresses text/html, and the body filter does nothing when the header filter said no', async () => {
    const conf = compilePluginConf(gzip, {});
    const ctx = testContext({ ...compressible(), responseHeaders: { 'content-type': 'text/html' } });
    gzip.header_filter!(conf, ctx);
    assert.equal(ctx.responseHeader('content-encoding'), 'gzip');
    const plain = testContext({ ...compressible(), headers: {} });
    gzip.header_filter!(conf, plain);
    assert.equal(await gzip.body_filter!(conf, plain, Buffer.from('x')), undefined);
  });

  it('rejects misconfigurations', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(gzip, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.match(check({ comp_level: 10 }), /property "comp_level" validation failed: expected 10 to be at most 9/);
    assert.notEqual(check({ types: 'text/plain' }), 'ok');
    assert.notEqual(check({ types: [] }), 'ok');
    assert.match(check({ min_length: 0 }), /property "min_length" validation failed/);
    assert.equal(check({ types: '*', buffers: { number: 4, size: 8192 } }), 'ok');
  });
});
