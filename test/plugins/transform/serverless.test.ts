import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import serverlessPost from '../../../src/plugins/builtin/serverless-post-function';
import serverlessPre from '../../../src/plugins/builtin/serverless-pre-function';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

describe('serverless-pre-function and serverless-post-function', () => {
  it('run their functions in order in the configured phase only', async () => {
    const conf = compilePluginConf(serverlessPre, {
      phase: 'rewrite',
      functions: [
        "return (conf, ctx) => { ctx.setHeader('x-first', conf.phase); }",
        "return function (conf, ctx) { ctx.setHeader('x-second', ctx.var('arg_a')); }",
      ],
    });
    const ctx = testContext({ uri: '/?a=7' });
    assert.equal(serverlessPre.access!(conf, ctx), undefined);
    assert.equal(ctx.upstreamHeader('x-first'), undefined);
    assert.equal(await serverlessPre.rewrite!(conf, ctx), undefined);
    assert.equal(ctx.upstreamHeader('x-first'), 'rewrite');
    assert.equal(ctx.upstreamHeader('x-second'), '7');
  });

  it('end the request at the first exit, also from an async function', async () => {
    const conf = compilePluginConf(serverlessPost, {
      functions: [
        'return async (conf, ctx) => { await new Promise((r) => setTimeout(r, 5)); }',
        "return (conf, ctx) => ctx.exit(403, { message: 'denied by ' + conf.phase })",
        "return (conf, ctx) => { ctx.setHeader('x-never', '1'); }",
      ],
    });
    const ctx = testContext();
    const exit = await serverlessPost.access!(conf, ctx);
    assert.deepEqual(exit, { status: 403, body: { message: 'denied by access' }, headers: undefined });
    assert.equal(ctx.upstreamHeader('x-never'), undefined);
    assert.equal(serverlessPost.priority, -2000);
    assert.equal(serverlessPre.priority, 10000);
  });

  it('change the response body in body_filter', async () => {
    const conf = compilePluginConf(serverlessPre, {
      phase: 'body_filter',
      functions: [
        'return (conf, ctx, body) => body.toString().toUpperCase()',
        "return (conf, ctx, body) => Buffer.concat([body, Buffer.from('!')])",
      ],
    });
    const body = await serverlessPre.body_filter!(conf, testContext(), Buffer.from('hi'));
    assert.equal(body?.toString(), 'HI!');
  });

  it('report sources that do not compile or do not return a function', () => {
    const check = (functions: string[]) => {
      const result = checkPluginConf(serverlessPre, { functions });
      return result.ok ? 'ok' : result.error;
    };
    assert.match(check(['return (conf, ctx => {']), /^failed to loadstring: /);
    assert.equal(check(['return 42']), 'only accept JavaScript function, the input code type is number');
    assert.match(check(["throw new Error('boom')"]), /^failed to run the function source: boom/);
    assert.match(check([]), /property "functions" validation failed/);
    assert.notEqual(checkPluginConf(serverlessPre, { functions: ['return () => {}'], phase: 'balancer' }).ok, true);
    assert.equal(check(['return () => {}']), 'ok');
  });
});
