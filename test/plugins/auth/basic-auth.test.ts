import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import basicAuth, { parseBasicAuthorization } from '../../../src/plugins/builtin/basic-auth';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';
import { assertExit, assertPassed } from './helpers';

const foo = testConsumer('foo', { 'basic-auth': { username: 'foo', password: 'bar' } });
const anonymous = testConsumer('anonymous', {});
const consumers = [foo, anonymous];
const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="basic"' };

function basic(credentials: string): string {
  return 'Basic ' + Buffer.from(credentials).toString('base64');
}

describe('basic-auth', () => {
  it('has APISIX priority and type', () => {
    assert.equal(basicAuth.priority, 2520);
    assert.equal(basicAuth.type, 'auth');
  });

  it('attaches the consumer whose username and password match', () => {
    const conf = compilePluginConf(basicAuth, {});
    const ctx = testContext({ headers: { authorization: basic('foo:bar') }, consumers });
    assertPassed(basicAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'foo');
    assert.equal(ctx.upstreamHeader('x-consumer-username'), 'foo');
    assert.equal(ctx.upstreamHeader('authorization'), basic('foo:bar'));
  });

  it('rejects a missing Authorization header', () => {
    const conf = compilePluginConf(basicAuth, {});
    const ctx = testContext({ consumers });
    assertExit(basicAuth.rewrite!(conf, ctx), 401, { message: 'Missing authorization in request' }, CHALLENGE);
  });

  it('rejects a malformed header: "Invalid authorization in request"', () => {
    const conf = compilePluginConf(basicAuth, {});
    for (const authorization of ['Bearer abc', 'Basic', 'Basic !!!', basic('no-colon')]) {
      const ctx = testContext({ headers: { authorization }, consumers });
      assertExit(basicAuth.rewrite!(conf, ctx), 401, { message: 'Invalid authorization in request' }, CHALLENGE);
    }
  });

  it('rejects a wrong password or an unknown user: "Invalid user authorization"', () => {
    const conf = compilePluginConf(basicAuth, {});
    for (const credentials of ['foo:baz', 'foo:', 'bar:bar', 'foo:barr']) {
      const ctx = testContext({ headers: { authorization: basic(credentials) }, consumers });
      assertExit(basicAuth.rewrite!(conf, ctx), 401, { message: 'Invalid user authorization' }, CHALLENGE);
      assert.equal(ctx.consumer, undefined);
    }
  });

  it('hides the Authorization header from the upstream', () => {
    const conf = compilePluginConf(basicAuth, { hide_credentials: true });
    const ctx = testContext({ headers: { authorization: basic('foo:bar') }, consumers });
    assertPassed(basicAuth.rewrite!(conf, ctx));
    assert.equal(ctx.upstreamHeader('authorization'), undefined);
  });

  it('falls back to the anonymous consumer', () => {
    const conf = compilePluginConf(basicAuth, { anonymous_consumer: 'anonymous', hide_credentials: true });
    const ctx = testContext({ headers: { authorization: basic('foo:wrong') }, consumers });
    assertPassed(basicAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'anonymous');
    assert.equal(ctx.upstreamHeader('authorization'), undefined, 'hidden for the anonymous consumer too');
  });

  it('parses credentials as RFC 7617 (password after the first colon) and strips whitespace as APISIX', () => {
    assert.deepEqual(parseBasicAuthorization(basic('u:p:q')), { username: 'u', password: 'p:q' });
    assert.deepEqual(parseBasicAuthorization(basic(' u : p ')), { username: 'u', password: 'p' });
    assert.deepEqual(parseBasicAuthorization('basic ' + Buffer.from('a:b').toString('base64')), {
      username: 'a',
      password: 'b',
    });
  });

  it('validates configurations with APISIX messages', () => {
    assert.deepEqual(checkPluginConf(basicAuth, { username: 'foo' }, 'consumer'), {
      ok: false,
      error: 'property "password" is required',
    });
    assert.deepEqual(checkPluginConf(basicAuth, { hide_credentials: 'yes' }), {
      ok: false,
      error: 'property "hide_credentials" validation failed: wrong type: expected boolean, got string',
    });
    assert.equal(checkPluginConf(basicAuth, {}).ok, true);
  });
});
