import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';

import hmacAuth, { parseSignatureHeader, signingString } from '../../../src/plugins/builtin/hmac-auth';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';
import { assertExit, assertPassed } from './helpers';

const john = testConsumer('john', { 'hmac-auth': { key_id: 'john-key', secret_key: 'john-secret-key' } });
const anonymous = testConsumer('anonymous', {});
const consumers = [john, anonymous];
const REJECTED = { message: "client request can't be validated" };

interface SignOptions {
  method?: string;
  uri?: string;
  keyId?: string;
  secret?: string;
  algorithm?: string;
  date?: string;
  headers?: Record<string, string>;
  signed?: string[];
}

/** Request headers signed as a client following APISIX's docs would sign them. */
export function signedHeaders(options: SignOptions = {}): Record<string, string> {
  const keyId = options.keyId ?? 'john-key';
  const algorithm = options.algorithm ?? 'hmac-sha256';
  const date = options.date ?? new Date().toUTCString();
  const headers: Record<string, string> = { date, ...options.headers };
  const signed = options.signed ?? ['@request-target', 'date'];
  let text = `${keyId}\n`;
  for (const name of signed) {
    text +=
      name === '@request-target'
        ? `${options.method ?? 'GET'} ${options.uri ?? '/get'}\n`
        : `${name}: ${headers[name]}\n`;
  }
  const signature = createHmac(algorithm.slice(5), options.secret ?? 'john-secret-key')
    .update(text)
    .digest('base64');
  headers.authorization = `Signature keyId="${keyId}",algorithm="${algorithm}",headers="${signed.join(' ')}",signature="${signature}"`;
  return headers;
}

describe('hmac-auth', () => {
  it('has APISIX priority and type', () => {
    assert.equal(hmacAuth.priority, 2530);
    assert.equal(hmacAuth.type, 'auth');
  });

  it("builds APISIX's signing string: keyId, then `name: value` lines, @request-target as `METHOD uri`", () => {
    const ctx = testContext({
      method: 'GET',
      uri: '/get',
      headers: { date: 'Fri, 06 Sep 2024 06:41:29 GMT', 'x-a': 'hello' },
    });
    const text = signingString(ctx, 'john-key', ['@request-target', 'date', 'x-a']);
    assert.equal(text, 'john-key\nGET /get\ndate: Fri, 06 Sep 2024 06:41:29 GMT\nx-a: hello\n');
  });

  it('accepts a request signed with each allowed algorithm and attaches the consumer', () => {
    const conf = compilePluginConf(hmacAuth, {});
    for (const algorithm of ['hmac-sha1', 'hmac-sha256', 'hmac-sha512']) {
      const ctx = testContext({ uri: '/get', headers: signedHeaders({ algorithm }), consumers });
      assertPassed(hmacAuth.rewrite!(conf, ctx));
      assert.equal(ctx.consumer?.username, 'john');
      assert.equal(ctx.upstreamHeader('x-consumer-username'), 'john');
      assert.ok(ctx.upstreamHeader('authorization'), 'kept without hide_credentials');
    }
  });

  it('signs the request target with its query string', () => {
    const conf = compilePluginConf(hmacAuth, {});
    const headers = signedHeaders({ method: 'POST', uri: '/post?a=1&b=2' });
    assertPassed(hmacAuth.rewrite!(conf, testContext({ method: 'POST', uri: '/post?a=1&b=2', headers, consumers })));
    assertExit(
      hmacAuth.rewrite!(conf, testContext({ method: 'POST', uri: '/post?a=1', headers, consumers })),
      401,
      REJECTED,
    );
  });

  it('rejects with "client request can\'t be validated" and logs the reason', () => {
    const conf = compilePluginConf(hmacAuth, { allowed_algorithms: ['hmac-sha256'] });
    const cases: [Record<string, string>, string][] = [
      [{}, 'missing Authorization header'],
      [{ authorization: 'Basic abc' }, "Authorization header does not start with 'Signature'"],
      [{ authorization: 'Signature keyId="john-key"' }, 'keyId or signature missing'],
      [signedHeaders({ keyId: 'nobody' }), 'Invalid key_id'],
      [signedHeaders({ algorithm: 'hmac-sha512' }), 'Invalid algorithm'],
      [signedHeaders({ secret: 'wrong' }), 'Invalid signature'],
      [signedHeaders({ date: new Date(Date.now() - 1000_000).toUTCString() }), 'Clock skew exceeded'],
      [signedHeaders({ date: 'yesterday' }), 'Invalid GMT format time'],
    ];
    for (const [headers, reason] of cases) {
      const ctx = testContext({ uri: '/get', headers, consumers });
      assertExit(hmacAuth.rewrite!(conf, ctx), 401, REJECTED);
      assert.equal(ctx.log.records.at(-1)?.message, `client request can't be validated: ${reason}`);
    }
    const noDate = signedHeaders({ signed: ['@request-target'] });
    delete noDate.date;
    const ctx = testContext({ uri: '/get', headers: noDate, consumers });
    assertExit(hmacAuth.rewrite!(conf, ctx), 401, REJECTED);
    assert.match(ctx.log.records.at(-1)?.message ?? '', /Date header missing/);
  });

  it('requires every route signed_headers entry to be signed', () => {
    const conf = compilePluginConf(hmacAuth, { signed_headers: ['date', 'x-custom-a'] });
    const custom = { 'x-custom-a': 'hello' };
    const good = signedHeaders({ headers: custom, signed: ['@request-target', 'date', 'x-custom-a'] });
    assertPassed(hmacAuth.rewrite!(conf, testContext({ uri: '/get', headers: good, consumers })));

    const missing = signedHeaders({ headers: custom });
    const ctx = testContext({ uri: '/get', headers: missing, consumers });
    assertExit(hmacAuth.rewrite!(conf, ctx), 401, REJECTED);
    assert.match(ctx.log.records.at(-1)?.message ?? '', /expected header "x-custom-a" missing in signing/);
  });

  it('validates the body against the Digest header', async () => {
    const conf = compilePluginConf(hmacAuth, { validate_request_body: true });
    const body = '{"name": "world"}';
    const digest = 'SHA-256=' + createHash('sha256').update(body).digest('base64');
    const request = { method: 'POST', uri: '/post', body, consumers };

    const ok = testContext({ ...request, headers: { ...signedHeaders({ method: 'POST', uri: '/post' }), digest } });
    assertPassed(await hmacAuth.rewrite!(conf, ok));
    assert.equal(ok.consumer?.username, 'john');

    const wrong = testContext({
      ...request,
      headers: { ...signedHeaders({ method: 'POST', uri: '/post' }), digest: 'SHA-256=AAAA' },
    });
    assertExit(await hmacAuth.rewrite!(conf, wrong), 401, REJECTED);

    const absent = testContext({ ...request, headers: signedHeaders({ method: 'POST', uri: '/post' }) });
    assertExit(await hmacAuth.rewrite!(conf, absent), 401, REJECTED);

    const tooLarge = compilePluginConf(hmacAuth, { validate_request_body: true, max_req_body_size: 4 });
    const big = testContext({ ...request, headers: { ...signedHeaders({ method: 'POST', uri: '/post' }), digest } });
    assertExit(await hmacAuth.rewrite!(tooLarge, big), 401, REJECTED);
  });

  it('hides the Authorization header and falls back to the anonymous consumer', () => {
    const hide = compilePluginConf(hmacAuth, { hide_credentials: true });
    const ctx = testContext({ uri: '/get', headers: signedHeaders(), consumers });
    assertPassed(hmacAuth.rewrite!(hide, ctx));
    assert.equal(ctx.upstreamHeader('authorization'), undefined);

    const anon = compilePluginConf(hmacAuth, { anonymous_consumer: 'anonymous' });
    const fallback = testContext({ uri: '/get', headers: signedHeaders({ secret: 'wrong' }), consumers });
    assertPassed(hmacAuth.rewrite!(anon, fallback));
    assert.equal(fallback.consumer?.username, 'anonymous');
  });

  it('parses the Signature parameters', () => {
    assert.deepEqual(
      parseSignatureHeader('Signature keyId="a",algorithm="hmac-sha1", headers="date",signature="x=="'),
      {
        keyId: 'a',
        algorithm: 'hmac-sha1',
        headers: 'date',
        signature: 'x==',
      },
    );
    assert.equal(parseSignatureHeader('Signature keyId=a'), undefined);
    assert.equal(parseSignatureHeader('Bearer x'), undefined);
  });

  it('validates configurations with APISIX messages and defaults', () => {
    assert.deepEqual(checkPluginConf(hmacAuth, {}), {
      ok: true,
      conf: {
        allowed_algorithms: ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'],
        clock_skew: 300,
        validate_request_body: false,
        max_req_body_size: 64 * 1024 * 1024,
        hide_credentials: false,
      },
    });
    assert.deepEqual(checkPluginConf(hmacAuth, { clock_skew: 0 }), {
      ok: false,
      error: 'property "clock_skew" validation failed: expected 0 to be at least 1',
    });
    assert.deepEqual(checkPluginConf(hmacAuth, { allowed_algorithms: ['md5'] }), {
      ok: false,
      error:
        'property "allowed_algorithms" validation failed: failed to validate item 1: matches none of the enum values',
    });
    assert.deepEqual(checkPluginConf(hmacAuth, { key_id: 'k' }, 'consumer'), {
      ok: false,
      error: 'property "secret_key" is required',
    });
  });
});
