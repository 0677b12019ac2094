// The loggers' log entry (src/plugins/lib/log-entry.ts): which phases a
// configuration needs, how captured bodies are cut and where they land.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { bodyText, capturedBodyLength, compileLogEntry, logBatchOptions } from '../../../src/plugins/lib/log-entry';
import { testContext } from '../support/test-context';

const PLUGIN = 'test-logger';

describe('log entry bodies', () => {
  it('asks for access only with include_req_body and body_filter only with include_resp_body', () => {
    assert.deepEqual(compileLogEntry({}, undefined).phases, ['log']);
    assert.deepEqual(compileLogEntry({ include_req_body: true }, undefined).phases, ['access', 'log']);
    assert.deepEqual(compileLogEntry({ include_resp_body: true }, undefined).phases, ['body_filter', 'log']);
    assert.deepEqual(logBatchOptions(compileLogEntry({}, undefined)), {}, 'no body: entries weigh nothing');
    assert.equal(typeof logBatchOptions(compileLogEntry({ include_resp_body: true }, undefined)).weigh, 'function');
  });

  it('cuts a body at a UTF-8 character boundary', () => {
    const text = 'a€b😀'; // 1 + 3 + 1 + 4 bytes
    const bytes = Buffer.from(text);
    assert.deepEqual(bodyText(bytes, 9), { text, truncated: false });
    assert.deepEqual(bodyText(bytes, 8), { text: 'a€b', truncated: true });
    assert.deepEqual(bodyText(bytes, 5), { text: 'a€b', truncated: true });
    assert.deepEqual(bodyText(bytes, 3), { text: 'a', truncated: true });
    assert.deepEqual(bodyText(bytes, 1), { text: 'a', truncated: true });
    assert.deepEqual(bodyText(Buffer.from('€'), 2), { text: '', truncated: true });
  });

  it('puts the response body in the full entry as response.body, body_truncated only when cut', () => {
    const builder = compileLogEntry({ include_resp_body: true, max_resp_body_bytes: 4 }, undefined);
    const whole = testContext({ uri: '/a' });
    builder.captureResponseBody(whole, PLUGIN, Buffer.from('abcd'));
    const wholeEntry = builder.build(whole, PLUGIN) as Record<string, Record<string, unknown>>;
    assert.equal(wholeEntry.response.body, 'abcd');
    assert.equal('body_truncated' in wholeEntry.response, false);
    assert.equal(wholeEntry.response.status, 200);

    const cut = testContext({ uri: '/a' });
    builder.captureResponseBody(cut, PLUGIN, Buffer.from('abcdef'));
    const cutEntry = builder.build(cut, PLUGIN) as Record<string, Record<string, unknown>>;
    assert.equal(cutEntry.response.body, 'abcd');
    assert.equal(cutEntry.response.body_truncated, true);
    assert.equal(capturedBodyLength(cutEntry), 4);
  });

  it('include_resp_body_expr is evaluated on the response vars', () => {
    const builder = compileLogEntry(
      { include_resp_body: true, include_resp_body_expr: [['status', '>=', 500]] },
      undefined,
    );
    const ok = testContext({ status: 200 });
    builder.captureResponseBody(ok, PLUGIN, Buffer.from('fine'));
    assert.equal('body' in (builder.build(ok, PLUGIN).response as object), false);
    const failed = testContext({ status: 502 });
    builder.captureResponseBody(failed, PLUGIN, Buffer.from('broken'));
    assert.equal((builder.build(failed, PLUGIN).response as Record<string, unknown>).body, 'broken');
  });

  it('a request body over max_req_body_bytes is left out and marked, the request is not failed', async () => {
    const builder = compileLogEntry({ include_req_body: true, max_req_body_bytes: 4 }, undefined);
    const ctx = testContext({ method: 'POST', body: 'too long' });
    await builder.captureRequestBody(ctx, PLUGIN);
    const request = builder.build(ctx, PLUGIN).request as Record<string, unknown>;
    assert.equal('body' in request, false);
    assert.equal(request.body_truncated, true);
  });

  it('a custom log_format gets the bodies in objects of their own; a literal of the format is never changed', async () => {
    const literal = { team: 'edge' };
    const format = { uri: '$uri', request: literal, response: 'literal' };
    const builder = compileLogEntry({ include_req_body: true, include_resp_body: true, log_format: format }, undefined);
    const ctx = testContext({ method: 'POST', uri: '/f', body: 'in' });
    await builder.captureRequestBody(ctx, PLUGIN);
    builder.captureResponseBody(ctx, PLUGIN, Buffer.from('out'));
    assert.deepEqual(builder.build(ctx, PLUGIN), { uri: '/f', request: { body: 'in' }, response: { body: 'out' } });
    assert.deepEqual(literal, { team: 'edge' });
    assert.deepEqual(builder.build(testContext({ uri: '/g' }), PLUGIN), {
      uri: '/g',
      request: literal,
      response: 'literal',
    });
  });
});
