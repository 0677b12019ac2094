import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import cors from '../../../src/plugins/builtin/cors';
import csrf, { csrfToken } from '../../../src/plugins/builtin/csrf';
import realIp from '../../../src/plugins/builtin/real-ip';
import type { PluginExit } from '../../../src/plugins/types';
import { checkPluginConf, compilePluginConf, testContext, testEnv } from '../support/test-context';

describe('cors', () => {
  test('a preflight is answered 200; header_filter adds the CORS headers', async () => {
    const compiled = compilePluginConf(cors, {});
    const ctx = testContext({ method: 'OPTIONS', headers: { origin: 'http://a.com' } });
    const exit = (await cors.rewrite?.(compiled, ctx)) as PluginExit;
    assert.equal(exit.status, 200);
    await cors.header_filter?.(compiled, ctx);
    assert.equal(ctx.responseHeader('access-control-allow-origin'), '*');
    assert.equal(ctx.responseHeader('access-control-allow-methods'), '*');
    assert.equal(ctx.responseHeader('access-control-max-age'), '5');
    assert.equal(ctx.responseHeader('vary'), undefined);
    assert.equal(await cors.rewrite?.(compiled, testContext({ method: 'GET' })), undefined);
  });

  test('header_filter: a listed origin is echoed with Vary; an unlisted one gets no headers', async () => {
    const compiled = compilePluginConf(cors, {
      allow_origins: 'http://a.com,https://b.com',
      allow_methods: 'GET,POST',
      allow_headers: 'X-Token',
      expose_headers: 'X-Trace',
      max_age: 60,
      allow_credential: true,
    });
    const ctx = testContext({ headers: { origin: 'https://b.com' } });
    await cors.header_filter?.(compiled, ctx);
    assert.equal(ctx.responseHeader('access-control-allow-origin'), 'https://b.com');
    assert.equal(ctx.responseHeader('vary'), 'Origin');
    assert.equal(ctx.responseHeader('access-control-allow-methods'), 'GET,POST');
    assert.equal(ctx.responseHeader('access-control-allow-headers'), 'X-Token');
    assert.equal(ctx.responseHeader('access-control-expose-headers'), 'X-Trace');
    assert.equal(ctx.responseHeader('access-control-max-age'), '60');
    assert.equal(ctx.responseHeader('access-control-allow-credentials'), 'true');
    const other = testContext({ headers: { origin: 'http://evil.com' } });
    await cors.header_filter?.(compiled, other);
    assert.equal(other.responseHeader('access-control-allow-origin'), undefined);
  });

  test('"**" echoes the origin, the methods and the requested headers', async () => {
    const compiled = compilePluginConf(cors, { allow_origins: '**', allow_methods: '**', allow_headers: '**' });
    const ctx = testContext({ headers: { origin: 'http://x.io', 'access-control-request-headers': 'X-A, X-B' } });
    await cors.header_filter?.(compiled, ctx);
    assert.equal(ctx.responseHeader('access-control-allow-origin'), 'http://x.io');
    assert.equal(
      ctx.responseHeader('access-control-allow-methods'),
      'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE',
    );
    assert.equal(ctx.responseHeader('access-control-allow-headers'), 'X-A, X-B');
  });

  test('allow_origins_by_regex and allow_origins_by_metadata', async () => {
    const byRegex = compilePluginConf(cors, { allow_origins_by_regex: ['^https://.*\\.example\\.com$'] });
    const yes = testContext({ headers: { origin: 'https://api.example.com' } });
    await cors.header_filter?.(byRegex, yes);
    assert.equal(yes.responseHeader('access-control-allow-origin'), 'https://api.example.com');
    const no = testContext({ headers: { origin: 'https://example.org' } });
    await cors.header_filter?.(byRegex, no);
    assert.equal(no.responseHeader('access-control-allow-origin'), undefined);

    const byMetadata = compilePluginConf(
      cors,
      { allow_origins_by_metadata: ['partners'], allow_origins: 'http://own.com' },
      testEnv({ metadata: { allow_origins: { partners: 'https://p1.com,https://p2.com' } } }),
    );
    const partner = testContext({ headers: { origin: 'https://p2.com' } });
    await cors.header_filter?.(byMetadata, partner);
    assert.equal(partner.responseHeader('access-control-allow-origin'), 'https://p2.com');
    const own = testContext({ headers: { origin: 'http://own.com' } });
    await cors.header_filter?.(byMetadata, own);
    assert.equal(own.responseHeader('access-control-allow-origin'), 'http://own.com');
  });

  test("misconfiguration: '*' with allow_credential, an invalid regex, a bad origin list", () => {
    assert.deepEqual(checkPluginConf(cors, { allow_credential: true }), {
      ok: false,
      error: "you can not set '*' for other option when 'allow_credential' is true",
    });
    assert.deepEqual(checkPluginConf(cors, { allow_origins_by_regex: ['(['] }), {
      ok: false,
      error: 'regex expression invalid',
    });
    assert.equal(checkPluginConf(cors, { allow_origins: 'not an origin' }).ok, false);
  });
});

describe('real-ip', () => {
  test('takes the address (and port) from a header for a trusted peer only', async () => {
    const compiled = compilePluginConf(realIp, { source: 'http_x_real_ip', trusted_addresses: ['127.0.0.0/24'] });
    const trusted = testContext({ remoteAddr: '127.0.0.1', headers: { 'x-real-ip': '1.2.3.4:9080' } });
    await realIp.rewrite?.(compiled, trusted);
    assert.equal(trusted.remoteAddr, '1.2.3.4');
    assert.equal(trusted.var('remote_addr'), '1.2.3.4');
    assert.equal(trusted.remotePort, 9080);
    const untrusted = testContext({ remoteAddr: '8.8.8.8', headers: { 'x-real-ip': '1.2.3.4' } });
    await realIp.rewrite?.(compiled, untrusted);
    assert.equal(untrusted.remoteAddr, '8.8.8.8');
  });

  test('X-Forwarded-For: the last address, or with recursive the last untrusted one', async () => {
    const header = { 'x-forwarded-for': '9.9.9.9, 1.1.1.1, 10.0.0.2' };
    const last = compilePluginConf(realIp, { source: 'http_x_forwarded_for' });
    const ctx = testContext({ headers: header });
    await realIp.rewrite?.(last, ctx);
    assert.equal(ctx.remoteAddr, '10.0.0.2');
    const recursive = compilePluginConf(realIp, {
      source: 'http_x_forwarded_for',
      trusted_addresses: ['127.0.0.1', '10.0.0.0/8'],
      recursive: true,
    });
    const walked = testContext({ headers: header });
    await realIp.rewrite?.(recursive, walked);
    assert.equal(walked.remoteAddr, '1.1.1.1');
  });

  test('a query argument source; a missing or bad value changes nothing', async () => {
    const compiled = compilePluginConf(realIp, { source: 'arg_realip' });
    const fromArg = testContext({ uri: '/?realip=2001:db8::5' });
    await realIp.rewrite?.(compiled, fromArg);
    assert.equal(fromArg.remoteAddr, '2001:db8::5');
    const missing = testContext({});
    await realIp.rewrite?.(compiled, missing);
    assert.equal(missing.remoteAddr, '127.0.0.1');
    const bad = testContext({ uri: '/?realip=nonsense' });
    await realIp.rewrite?.(compiled, bad);
    assert.equal(bad.remoteAddr, '127.0.0.1');
  });

  test('misconfiguration: no source, bad trusted address', () => {
    assert.equal(checkPluginConf(realIp, {}).ok, false);
    assert.deepEqual(checkPluginConf(realIp, { source: 'http_x', trusted_addresses: ['x'] }), {
      ok: false,
      error: 'invalid ip address: x',
    });
  });
});

describe('csrf', () => {
  const conf = { key: 'userkey', expires: 1000000000 };

  test('header_filter sets a signed token cookie; a safe method passes without one', async () => {
    const compiled = compilePluginConf(csrf, conf);
    const ctx = testContext({});
    assert.equal(await csrf.access?.(compiled, ctx), undefined);
    await csrf.header_filter?.(compiled, ctx);
    const cookie = ctx.responseHeader('set-cookie') ?? '';
    assert.match(cookie, /^apisix-csrf-token=[A-Za-z0-9+/=]+;path=\/;SameSite=Lax;Expires=/);
    const token = JSON.parse(Buffer.from(cookie.split(';')[0].split('=').slice(1).join('='), 'base64').toString());
    assert.equal(typeof token.random, 'number');
    assert.equal(typeof token.expires, 'number');
    assert.match(token.sign, /^[0-9a-f]{64}$/);
  });

  test('unsafe methods need the same valid token in header and cookie', async () => {
    const compiled = compilePluginConf(csrf, conf);
    const token = csrfToken('userkey');
    const post = (headers: Record<string, string>) => csrf.access?.(compiled, testContext({ method: 'POST', headers }));
    assert.deepEqual(((await post({})) as PluginExit).body, { error_msg: 'no csrf token in headers' });
    assert.deepEqual(((await post({ 'apisix-csrf-token': token })) as PluginExit).body, {
      error_msg: 'no csrf cookie',
    });
    const mismatch = (await post({
      'apisix-csrf-token': token,
      cookie: `apisix-csrf-token=${csrfToken('userkey')}`,
    })) as PluginExit;
    assert.deepEqual([mismatch.status, mismatch.body], [401, { error_msg: 'csrf token mismatch' }]);
    assert.equal(await post({ 'apisix-csrf-token': token, cookie: `apisix-csrf-token=${token}` }), undefined);
    const forged = csrfToken('otherkey');
    const bad = (await post({ 'apisix-csrf-token': forged, cookie: `apisix-csrf-token=${forged}` })) as PluginExit;
    assert.deepEqual([bad.status, bad.body], [401, { error_msg: 'Failed to verify the csrf token signature' }]);
  });

  test('an expired token is refused', async () => {
    const compiled = compilePluginConf(csrf, { key: 'userkey', expires: 1 });
    const old = csrfToken('userkey', Date.now() - 5000);
    const exit = (await csrf.access?.(
      compiled,
      testContext({ method: 'PUT', headers: { 'apisix-csrf-token': old, cookie: `apisix-csrf-token=${old}` } }),
    )) as PluginExit;
    assert.deepEqual(exit.body, { error_msg: 'Failed to verify the csrf token signature' });
  });

  test('misconfiguration: key is required', () => {
    assert.equal(checkPluginConf(csrf, {}).ok, false);
  });
});
