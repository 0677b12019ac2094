import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import responseRewrite from '../../../src/plugins/builtin/response-rewrite';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

describe('response-rewrite', () => {
  it('sets the status, replaces the body and edits headers', async () => {
    const conf = compilePluginConf(responseRewrite, {
      status_code: 201,
      body: '{"code":"ok"}',
      headers: { add: ['X-Added: $remote_addr'], set: { 'X-Server': 'palisade' }, remove: ['x-secret'] },
    });
    const ctx = testContext({
      remoteAddr: '10.1.1.1',
      responseHeaders: { 'content-length': '5', 'x-secret': 's', etag: '"abc"' },
    });
    responseRewrite.header_filter!(conf, ctx);
    assert.equal(ctx.status, 201);
    assert.equal(ctx.responseHeader('x-added'), '10.1.1.1');
    assert.equal(ctx.responseHeader('x-server'), 'palisade');
    assert.equal(ctx.responseHeader('x-secret'), undefined);
    assert.equal(ctx.responseHeader('content-length'), undefined);
    assert.equal(ctx.responseHeader('etag'), undefined);
    const body = await responseRewrite.body_filter!(conf, ctx, Buffer.from('hello'));
    assert.equal(body?.toString(), '{"code":"ok"}');
  });

  it('decodes a base64 body', async () => {
    const conf = compilePluginConf(responseRewrite, {
      body: Buffer.from('binary\u0000').toString('base64'),
      body_base64: true,
    });
    const ctx = testContext();
    responseRewrite.header_filter!(conf, ctx);
    const body = await responseRewrite.body_filter!(conf, ctx, Buffer.from('x'));
    assert.deepEqual(body, Buffer.from('binary\u0000'));
  });

  it('does nothing when vars do not match', async () => {
    const conf = compilePluginConf(responseRewrite, {
      vars: [['status', '==', 500]],
      status_code: 200,
      body: 'masked',
    });
    const ctx = testContext({ status: 404 });
    responseRewrite.header_filter!(conf, ctx);
    assert.equal(ctx.status, 404);
    assert.equal(await responseRewrite.body_filter!(conf, ctx, Buffer.from('original')), undefined);
  });

  it('applies regex filters once or globally with captures', async () => {
    const conf = compilePluginConf(responseRewrite, {
      filters: [
        { regex: 'l', replace: 'L', scope: 'global' },
        { regex: '(\\w+)@(\\w+)', replace: '$2 at $1' },
        { regex: 'WORLD', replace: '$$', options: 'i' },
      ],
    });
    const ctx = testContext();
    responseRewrite.header_filter!(conf, ctx);
    const body = await responseRewrite.body_filter!(conf, ctx, Buffer.from('hello world, me@home me@work'));
    assert.equal(body?.toString(), 'heLLo $$, home at me me@work');
  });

  it('rejects misconfigurations with APISIX messages', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(responseRewrite, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.notEqual(check({ body: 'x', filters: [{ regex: 'a', replace: 'b' }] }), 'ok');
    assert.equal(check({ body_base64: true, body: '!!!' }), 'invalid base64 content');
    assert.equal(check({ body_base64: true }), 'invalid base64 content');
    assert.match(check({ vars: [['status', 'what', 1]] }), /^failed to validate the 'vars' expression: /);
    assert.match(check({ filters: [{ regex: '(', replace: '' }] }), /^regex "\(" validation failed: /);
    assert.match(
      check({ status_code: 100 }),
      /property "status_code" validation failed: expected 100 to be at least 200/,
    );
    assert.equal(check({ headers: { 'X-A': '1' } }), 'ok');
  });
});
