import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import redirect from '../../../src/plugins/builtin/redirect';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

describe('redirect', () => {
  it('redirects to a uri with variables, 302 by default', () => {
    const conf = compilePluginConf(redirect, { uri: '/new/$arg_id' });
    const ctx = testContext({ uri: '/old?id=7' });
    const exit = redirect.rewrite!(conf, ctx);
    assert.deepEqual(exit, { status: 302, body: undefined, headers: { Location: '/new/7' } });
  });

  it('appends the query string and encodes the uri when asked', () => {
    const conf = compilePluginConf(redirect, {
      uri: '/a b?x=1',
      ret_code: 307,
      encode_uri: true,
      append_query_string: true,
    });
    const exit = redirect.rewrite!(conf, testContext({ uri: '/old?y=2' }));
    assert.deepEqual(exit, { status: 307, body: undefined, headers: { Location: '/a%20b?x=1&y=2' } });
  });

  it('redirects by regex_uri only when it matches', () => {
    const conf = compilePluginConf(redirect, { regex_uri: ['^/v1/(.*)$', '/v2/$1'], ret_code: 301 });
    assert.deepEqual(redirect.rewrite!(conf, testContext({ uri: '/v1/users' })), {
      status: 301,
      body: undefined,
      headers: { Location: '/v2/users' },
    });
    assert.equal(redirect.rewrite!(conf, testContext({ uri: '/other' })), undefined);
  });

  it('sends http to https: 301 for GET, 308 for POST, nothing for https', () => {
    const conf = compilePluginConf(redirect, { http_to_https: true });
    const get = testContext({ uri: '/p?q=1', headers: { host: 'example.com' }, vars: { scheme: 'http' } });
    assert.deepEqual(redirect.rewrite!(conf, get), {
      status: 301,
      body: undefined,
      headers: { Location: 'https://example.com/p?q=1' },
    });
    const post = testContext({ method: 'POST', uri: '/p', headers: { host: 'example.com' }, vars: { scheme: 'http' } });
    assert.equal((redirect.rewrite!(conf, post) as { status: number }).status, 308);
    const secure = testContext({ uri: '/p', headers: { host: 'example.com' }, vars: { scheme: 'https' } });
    assert.equal(redirect.rewrite!(conf, secure), undefined);
  });

  it('rejects misconfigurations with APISIX messages', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(redirect, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.equal(
      check({ http_to_https: true, append_query_string: true }),
      'only one of `http_to_https` and `append_query_string` can be configured.',
    );
    assert.match(check({ regex_uri: ['(', '/x'] }), /^invalid regex_uri\(\(, \/x\): /);
    assert.notEqual(check({}), 'ok');
    assert.notEqual(check({ uri: '/a', http_to_https: true }), 'ok');
    assert.match(check({ uri: '/a', ret_code: 100 }), /property "ret_code" validation failed/);
  });
});
