import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import proxyRewrite, { compileTemplate, withQueryString } from '../../../src/plugins/builtin/proxy-rewrite';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

describe('proxy-rewrite', () => {
  it('rewrites the uri with variables and keeps the query string', () => {
    const conf = compilePluginConf(proxyRewrite, { uri: '/v2/$arg_user/${http_x_tenant}' });
    const ctx = testContext({ uri: '/old?user=jack&x=1', headers: { 'x-tenant': 't1' } });
    assert.equal(proxyRewrite.rewrite!(conf, ctx), undefined);
    assert.equal(ctx.upstreamUri, '/v2/jack/t1?user=jack&x=1');
  });

  it('leaves the uri alone when neither uri nor regex_uri is set', () => {
    const conf = compilePluginConf(proxyRewrite, { host: 'example.com', method: 'POST' });
    const ctx = testContext({ uri: '/a?b=1' });
    proxyRewrite.rewrite!(conf, ctx);
    assert.equal(ctx.upstreamUri, undefined);
    assert.equal(ctx.upstreamHost, 'example.com');
    assert.equal(ctx.upstreamMethod, 'POST');
  });

  it('applies the first matching regex_uri pair and exposes its captures to headers', () => {
    const conf = compilePluginConf(proxyRewrite, {
      regex_uri: ['^/nomatch/(.*)', '/x/$1', '^/api/(\\w+)/(\\d+)$', '/$1/item/${2}'],
      headers: { set: { 'X-Kind': '$1', 'X-Id': 'id-$2' }, add: { 'X-Via': 'palisade' }, remove: ['x-drop'] },
    });
    const ctx = testContext({ uri: '/api/books/42?q=1', headers: { 'x-drop': 'yes', 'x-via': 'client' } });
    proxyRewrite.rewrite!(conf, ctx);
    assert.equal(ctx.upstreamUri, '/books/item/42?q=1');
    assert.equal(ctx.upstreamHeader('x-kind'), 'books');
    assert.equal(ctx.upstreamHeader('x-id'), 'id-42');
    assert.equal(ctx.upstreamHeader('x-via'), 'client, palisade');
    assert.equal(ctx.upstreamHeader('x-drop'), undefined);
    // APISIX's order: add, then set, then remove.
    assert.deepEqual(
      ctx.headerEdits.map((edit) => edit.op + ':' + edit.name),
      ['add:x-via', 'set:x-kind', 'set:x-id', 'set:x-drop'],
    );
  });

  it('does not touch the uri when no regex_uri pair matches', () => {
    const conf = compilePluginConf(proxyRewrite, { regex_uri: ['^/other', '/x'] });
    const ctx = testContext({ uri: '/api' });
    proxyRewrite.rewrite!(conf, ctx);
    assert.equal(ctx.upstreamUri, undefined);
  });

  it('takes a flat header map as `set`, with variables', () => {
    const conf = compilePluginConf(proxyRewrite, { headers: { 'X-Client': '$remote_addr', 'X-Num': 5 } });
    const ctx = testContext({ remoteAddr: '10.0.0.9' });
    proxyRewrite.rewrite!(conf, ctx);
    assert.equal(ctx.upstreamHeader('x-client'), '10.0.0.9');
    assert.equal(ctx.upstreamHeader('x-num'), '5');
  });

  it('appends the query with & when the new uri has its own, and encodes unsafe characters', () => {
    assert.equal(withQueryString('/a b?x=1', '/o?y=2'), '/a%20b?x=1&y=2');
    assert.equal(withQueryString('/plain', '/o'), '/plain');
    assert.equal(withQueryString('/plain', '/o?'), '/plain');
  });

  it('sends the real request uri unchanged with use_real_request_uri_unsafe', () => {
    const conf = compilePluginConf(proxyRewrite, { use_real_request_uri_unsafe: true });
    const ctx = testContext({ uri: '/a%2Fb?x=%20' });
    proxyRewrite.rewrite!(conf, ctx);
    assert.equal(ctx.upstreamUri, '/a%2Fb?x=%20');
  });

  it('renders templates: escaped dollars, missing variables as empty text', () => {
    const ctx = testContext({ uri: '/p' });
    assert.equal(compileTemplate('\\$uri=$uri;$nope.').render(ctx), '$uri=/p;.');
    assert.equal(compileTemplate('constant').constant, 'constant');
  });

  it('rejects misconfigurations with APISIX messages', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(proxyRewrite, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.equal(check({ regex_uri: ['^/a', '/b', '^/c'] }), 'The length of regex_uri should be an even number');
    assert.match(check({ regex_uri: ['(', '/b'] }), /^invalid regex_uri\(\(, \/b\): /);
    assert.equal(check({ headers: { 'bad name': 'v' } }), 'invalid field character in header');
    assert.equal(check({ headers: { 'X-A': 'a\r\nb' } }), 'invalid value character in header');
    assert.match(check({ uri: 'no-slash' }), /property "uri" validation failed: failed to match pattern/);
    assert.match(check({ method: 'BREW' }), /property "method" validation failed: matches none of the enum values/);
    assert.equal(check({ uri: '/ok', headers: { add: { 'X-A': '1' } } }), 'ok');
  });
});
