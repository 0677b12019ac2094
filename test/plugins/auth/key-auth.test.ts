import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import keyAuth from '../../../src/plugins/builtin/key-auth';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';
import { assertExit, assertPassed } from './helpers';

const jack = testConsumer('jack', { 'key-auth': { key: 'auth-one' } }, { labels: { custom_id: 'c-42' } });
const rose = testConsumer('rose', { 'key-auth': { key: 'auth-two' } });
const anonymous = testConsumer('anonymous', {});
const consumers = [jack, rose, anonymous];
const CHALLENGE = { 'WWW-Authenticate': 'apikey realm="key"' };

describe('key-auth', () => {
  it('has APISIX priority and type', () => {
    assert.equal(keyAuth.priority, 2500);
    assert.equal(keyAuth.type, 'auth');
  });

  it('rejects a request without a key: 401 "Missing API key in request" with the challenge', () => {
    const conf = compilePluginConf(keyAuth, {});
    const ctx = testContext({ consumers });
    assertExit(keyAuth.rewrite!(conf, ctx), 401, { message: 'Missing API key in request' }, CHALLENGE);
    assert.equal(ctx.consumer, undefined);
  });

  it('rejects an unknown key: 401 "Invalid API key in request"', () => {
    const conf = compilePluginConf(keyAuth, {});
    const ctx = testContext({ headers: { apikey: 'nope' }, consumers });
    assertExit(keyAuth.rewrite!(conf, ctx), 401, { message: 'Invalid API key in request' }, CHALLENGE);
  });

  it('attaches the consumer of a key in the header and sends the consumer headers upstream', () => {
    const conf = compilePluginConf(keyAuth, {});
    const ctx = testContext({
      headers: { apikey: 'auth-one', 'x-consumer-username': 'spoofed', 'x-credential-identifier': 'spoofed' },
      consumers,
    });
    assertPassed(keyAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'jack');
    assert.equal(ctx.upstreamHeader('x-consumer-username'), 'jack');
    assert.equal(ctx.upstreamHeader('x-consumer-custom-id'), 'c-42');
    assert.equal(ctx.upstreamHeader('x-credential-identifier'), undefined);
    assert.equal(ctx.upstreamHeader('apikey'), 'auth-one', 'kept without hide_credentials');
  });

  it('reads the key from the query when the header is absent, and hides it from the upstream uri', () => {
    const conf = compilePluginConf(keyAuth, { hide_credentials: true });
    const ctx = testContext({ uri: '/get?a=1&apikey=auth-two&b=%20x', consumers });
    assertPassed(keyAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'rose');
    assert.equal(ctx.upstreamUri, '/get?a=1&b=%20x');
    assert.equal(ctx.upstreamHeader('x-consumer-custom-id'), undefined);
  });

  it('decodes the query value', () => {
    const special = testConsumer('special', { 'key-auth': { key: 'a b/c' } });
    const conf = compilePluginConf(keyAuth, {});
    const ctx = testContext({ uri: '/get?apikey=a+b%2Fc', consumers: [special] });
    assertPassed(keyAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'special');
  });

  it('hides a header key and prefers the header over the query', () => {
    const conf = compilePluginConf(keyAuth, { header: 'X-Key', query: 'k', hide_credentials: true });
    const ctx = testContext({ uri: '/get?k=auth-two', headers: { 'x-key': 'auth-one' }, consumers });
    assertPassed(keyAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'jack');
    assert.equal(ctx.upstreamHeader('x-key'), undefined);
    assert.equal(ctx.upstreamUri, undefined, 'the query is untouched when the key came from the header');
  });

  it('uses a configured realm in the challenge', () => {
    const conf = compilePluginConf(keyAuth, { realm: 'api' });
    const exit = keyAuth.rewrite!(conf, testContext({ consumers }));
    assertExit(exit, 401, { message: 'Missing API key in request' }, { 'WWW-Authenticate': 'apikey realm="api"' });
  });

  it('attaches the anonymous consumer when no key or a wrong key is sent', () => {
    const conf = compilePluginConf(keyAuth, { anonymous_consumer: 'anonymous' });
    for (const headers of [{}, { apikey: 'wrong' }] as Record<string, string>[]) {
      const ctx = testContext({ headers, consumers });
      assertPassed(keyAuth.rewrite!(conf, ctx));
      assert.equal(ctx.consumer?.username, 'anonymous');
      assert.equal(ctx.upstreamHeader('x-consumer-username'), 'anonymous');
    }
  });

  it('answers 401 "Invalid user authorization" when the anonymous consumer does not exist', () => {
    const conf = compilePluginConf(keyAuth, { anonymous_consumer: 'ghost' });
    const ctx = testContext({ consumers });
    assertExit(keyAuth.rewrite!(conf, ctx), 401, { message: 'Invalid user authorization' });
    assert.equal(ctx.log.records[0]?.level, 'error');
  });

  it('validates route and consumer configurations with APISIX messages and defaults', () => {
    assert.deepEqual(checkPluginConf(keyAuth, {}), {
      ok: true,
      conf: { header: 'apikey', query: 'apikey', hide_credentials: false, realm: 'key' },
    });
    assert.deepEqual(checkPluginConf(keyAuth, { header: 1 }), {
      ok: false,
      error: 'property "header" validation failed: wrong type: expected string, got number',
    });
    assert.deepEqual(checkPluginConf(keyAuth, { anonymous_consumer: '' }), {
      ok: false,
      error: 'property "anonymous_consumer" validation failed: string too short, expected at least 1, got 0',
    });
    assert.deepEqual(checkPluginConf(keyAuth, {}, 'consumer'), { ok: false, error: 'property "key" is required' });
    assert.deepEqual(checkPluginConf(keyAuth, { key: 'k' }, 'consumer'), { ok: true, conf: { key: 'k' } });
  });
});
