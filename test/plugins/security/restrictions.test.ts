import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import ipRestriction from '../../../src/plugins/builtin/ip-restriction';
import refererRestriction from '../../../src/plugins/builtin/referer-restriction';
import uaRestriction from '../../../src/plugins/builtin/ua-restriction';
import uriBlocker from '../../../src/plugins/builtin/uri-blocker';
import type { PluginExit } from '../../../src/plugins/types';
import { checkPluginConf, compilePluginConf, testContext, type TestRequest } from '../support/test-context';

async function access<C>(
  phase: ((conf: C, ctx: ReturnType<typeof testContext>) => unknown) | undefined,
  compiled: C,
  request: TestRequest,
): Promise<PluginExit | undefined> {
  assert.ok(phase);
  return (await phase(compiled, testContext(request))) as PluginExit | undefined;
}

describe('ip-restriction', () => {
  test('whitelist lets listed addresses and ranges in, refuses others with 403 and the message', async () => {
    const compiled = compilePluginConf(ipRestriction, { whitelist: ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'] });
    assert.equal(await access(ipRestriction.access, compiled, { remoteAddr: '127.0.0.1' }), undefined);
    assert.equal(await access(ipRestriction.access, compiled, { remoteAddr: '10.20.30.40' }), undefined);
    assert.equal(await access(ipRestriction.access, compiled, { remoteAddr: '2001:db8::1' }), undefined);
    assert.equal(await access(ipRestriction.access, compiled, { remoteAddr: '::ffff:10.1.1.1' }), undefined);
    const refused = await access(ipRestriction.access, compiled, { remoteAddr: '192.168.1.1' });
    assert.deepEqual(refused, { status: 403, body: { message: 'Your IP address is not allowed' }, headers: undefined });
  });

  test('blacklist refuses listed addresses, with a custom message and response_code', async () => {
    const compiled = compilePluginConf(ipRestriction, {
      blacklist: ['192.168.0.0/16'],
      message: 'go away',
      response_code: 404,
    });
    assert.equal(await access(ipRestriction.access, compiled, { remoteAddr: '10.0.0.1' }), undefined);
    const refused = await access(ipRestriction.access, compiled, { remoteAddr: '192.168.3.4' });
    assert.equal(refused?.status, 404);
    assert.deepEqual(refused?.body, { message: 'go away' });
  });

  test('misconfiguration: neither or both lists, bad addresses, bad response_code', () => {
    assert.equal(checkPluginConf(ipRestriction, {}).ok, false);
    assert.equal(checkPluginConf(ipRestriction, { whitelist: ['1.1.1.1'], blacklist: ['2.2.2.2'] }).ok, false);
    assert.deepEqual(checkPluginConf(ipRestriction, { whitelist: ['10.0.0.0/33'] }), {
      ok: false,
      error: 'invalid ip address: 10.0.0.0/33',
    });
    assert.deepEqual(checkPluginConf(ipRestriction, { blacklist: ['not-an-ip'] }), {
      ok: false,
      error: 'invalid ip address: not-an-ip',
    });
    assert.equal(checkPluginConf(ipRestriction, { whitelist: ['1.1.1.1'], response_code: 500 }).ok, false);
    assert.equal(checkPluginConf(ipRestriction, { whitelist: [] }).ok, false);
  });
});

describe('ua-restriction', () => {
  test('denylist refuses matching agents; a missing agent is refused unless bypass_missing', async () => {
    const compiled = compilePluginConf(ua, { denylist: ['(Baiduspider)/(\\d+)\\.(\\d+)', 'bad-bot'] });
    assert.equal(await access(ua.access, compiled, { headers: { 'user-agent': 'curl/8.0' } }), undefined);
    const refused = await access(ua.access, compiled, { headers: { 'user-agent': 'Baiduspider/3.0' } });
    assert.deepEqual(refused?.body, { message: 'Not allowed' });
    assert.equal(refused?.status, 403);
    assert.equal((await access(ua.access, compiled, {}))?.status, 403);
    const bypass = compilePluginConf(ua, { denylist: ['bad-bot'], bypass_missing: true });
    assert.equal(await access(ua.access, bypass, {}), undefined);
  });

  test('allowlist lets only matching agents in', async () => {
    const compiled = compilePluginConf(ua, { allowlist: ['^Mozilla'], message: 'browsers only' });
    assert.equal(await access(ua.access, compiled, { headers: { 'user-agent': 'Mozilla/5.0' } }), undefined);
    const refused = await access(ua.access, compiled, { headers: { 'user-agent': 'curl/8.0' } });
    assert.deepEqual(refused?.body, { message: 'browsers only' });
  });

  test('misconfiguration: no list, an invalid regex', () => {
    assert.equal(checkPluginConf(ua, {}).ok, false);
    const invalid = checkPluginConf(ua, { denylist: ['(unclosed'] });
    assert.equal(invalid.ok, false);
    assert.match(invalid.ok ? '' : invalid.error, /invalid denylist/);
  });
});

const ua = uaRestriction;

describe('referer-restriction', () => {
  test('whitelist with wildcards; missing Referer refused unless bypass_missing', async () => {
    const compiled = compilePluginConf(refererRestriction, { whitelist: ['example.com', '*.trusted.org'] });
    const allowed = ['http://example.com/a', 'https://Example.com:8443/x?y', 'https://api.trusted.org/'];
    for (const referer of allowed) {
      assert.equal(await access(refererRestriction.access, compiled, { headers: { referer } }), undefined, referer);
    }
    const refused = await access(refererRestriction.access, compiled, { headers: { referer: 'http://evil.com/' } });
    assert.deepEqual(refused?.body, { message: 'Your referer host is not allowed' });
    assert.equal(refused?.status, 403);
    assert.equal((await access(refererRestriction.access, compiled, {}))?.status, 403);
    const bypass = compilePluginConf(refererRestriction, { whitelist: ['example.com'], bypass_missing: true });
    assert.equal(await access(refererRestriction.access, bypass, {}), undefined);
  });

  test('blacklist refuses listed hosts', async () => {
    const compiled = compilePluginConf(refererRestriction, { blacklist: ['*.evil.com'], message: 'no' });
    assert.equal(
      await access(refererRestriction.access, compiled, { headers: { referer: 'http://ok.com' } }),
      undefined,
    );
    const refused = await access(refererRestriction.access, compiled, { headers: { referer: 'http://a.evil.com/' } });
    assert.deepEqual(refused?.body, { message: 'no' });
  });

  test('misconfiguration: no list, a bad host', () => {
    assert.equal(checkPluginConf(refererRestriction, {}).ok, false);
    assert.equal(checkPluginConf(refererRestriction, { whitelist: ['http://x.com/'] }).ok, false);
  });
});

describe('uri-blocker', () => {
  test('blocks $request_uri matches with 403, or rejected_code and rejected_msg', async () => {
    const compiled = compilePluginConf(uriBlocker, { block_rules: ['root.exe', 'root.m+'] });
    assert.equal(await access(uriBlocker.rewrite, compiled, { uri: '/hello' }), undefined);
    const blocked = await access(uriBlocker.rewrite, compiled, { uri: '/root.exe' });
    assert.equal(blocked?.status, 403);
    assert.equal(blocked?.body, undefined);
    assert.equal((await access(uriBlocker.rewrite, compiled, { uri: '/a?file=root.mmm' }))?.status, 403);
    const custom = compilePluginConf(uriBlocker, {
      block_rules: ['^/admin'],
      rejected_code: 410,
      rejected_msg: 'gone',
    });
    const exit = await access(uriBlocker.rewrite, custom, { uri: '/admin/x' });
    assert.deepEqual([exit?.status, exit?.body], [410, { error_msg: 'gone' }]);
  });

  test('case_insensitive', async () => {
    const sensitive = compilePluginConf(uriBlocker, { block_rules: ['/select'] });
    assert.equal(await access(uriBlocker.rewrite, sensitive, { uri: '/SELECT' }), undefined);
    const insensitive = compilePluginConf(uriBlocker, { block_rules: ['/select'], case_insensitive: true });
    assert.equal((await access(uriBlocker.rewrite, insensitive, { uri: '/SELECT' }))?.status, 403);
  });

  test('misconfiguration: missing rules, an invalid regex', () => {
    assert.equal(checkPluginConf(uriBlocker, {}).ok, false);
    const invalid = checkPluginConf(uriBlocker, { block_rules: ['(['] });
    assert.equal(invalid.ok, false);
    assert.match(invalid.ok ? '' : invalid.error, /^failed to check regex error/);
  });
});
