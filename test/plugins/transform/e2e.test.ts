// The transformation and serverless plugins end to end: a DataPlane with the
// built-in plugins as the loader finds them (serverless enabled) in front of
// a real upstream, and their misconfigurations refused by the Admin API.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';

import { request as undiciRequest } from 'undici';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import { RegistryCatalog } from '../../../src/plugins/catalog';
import { PluginLoader } from '../../../src/plugins/loader';
import type { Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { startAdmin, type Harness } from '../../admin/harness';
import { localUpstream } from '../../helpers/dataplane';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

async function call(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const response = await undiciRequest(`http://127.0.0.1:${port}${path}`, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body, text: body.toString() };
}

const BIG_HTML = Buffer.from('<p>palisade</p>\n'.repeat(65536)); // 1 MiB
const SMALL_HTML = Buffer.from('<p>small page, compressed inline</p>'.repeat(4));

function upstreamHandler(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  if (req.url?.startsWith('/html/big')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': BIG_HTML.length });
    res.end(BIG_HTML);
    return;
  }
  if (req.url?.startsWith('/html/chunked')) {
    // No length: chunked, 1 MiB in uneven writes over many reads, decoded as it arrives and compressed whole.
    res.writeHead(200, { 'content-type': 'text/html' });
    for (let at = 0; at < BIG_HTML.length; at += 70_001) res.write(BIG_HTML.subarray(at, at + 70_001));
    res.end();
    return;
  }
  if (req.url?.startsWith('/html/huge-chunked')) {
    // No length: chunked, 9 MiB, more than the data plane holds for body_filter (8 MiB).
    res.writeHead(200, { 'content-type': 'text/html' });
    for (let i = 0; i < 9; i++) res.write(BIG_HTML);
    res.end();
    return;
  }
  if (req.url?.startsWith('/html/small')) {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': SMALL_HTML.length });
    res.end(SMALL_HTML);
    return;
  }
  const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString() });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

describe('transformation and serverless plugins over real sockets', () => {
  let upstream: TestUpstream;
  let dataPlane: DataPlane;
  let port = 0;

  const route = (id: string, uri: string, plugins: Record<string, unknown>): Route =>
    ({ id, uri, plugins, upstream: localUpstream([upstream.port]) }) as Route;

  before(async () => {
    upstream = await startUpstream({ handler: upstreamHandler });
    const loader = new PluginLoader({ enabled: undefined, pluginDir: undefined, serverless: true });
    loader.load();
    dataPlane = new DataPlane(loadBackend('js'), {
      listen: [{ host: '127.0.0.1', port: 0 }],
      plugins: { registry: loader.registry },
    });
    const snapshot: ConfigSnapshot = {
      version: 1,
      routes: [
        route('rw', '/rw/*', {
          'proxy-rewrite': {
            regex_uri: ['^/rw/(\\w+)/(.*)$', '/v2/$2/$1'],
            host: 'backend.local',
            method: 'POST',
            headers: { set: { 'X-Kind': '$1', 'X-Client': '$remote_addr' }, remove: ['x-drop'] },
          },
        }),
        route('rr', '/rr', {
          'response-rewrite': {
            status_code: 202,
            headers: { set: { 'X-Rewritten': 'yes' }, remove: ['content-type'] },
            filters: [{ regex: '"method":"(\\w+)"', replace: '"verb":"$1"' }],
          },
        }),
        route('rr-body', '/rr-body', { 'response-rewrite': { body: 'replaced\n', vars: [['arg_swap', '==', '1']] } }),
        route('redirect', '/old', { redirect: { uri: '/new/$arg_id', ret_code: 301, append_query_string: false } }),
        route('https', '/secure/*', { redirect: { http_to_https: true } }),
        route('mock', '/mock', {
          mocking: { response_example: '{"mocked":"$arg_who"}', response_status: 201, response_headers: { 'X-M': 1 } },
        }),
        route('gzip', '/html/*', { gzip: { types: ['text/html'], vary: true } }),
        route('sls', '/sls', {
          'serverless-pre-function': {
            phase: 'access',
            functions: [
              "return (conf, ctx) => { if (ctx.var('arg_deny') === '1') return ctx.exit(403, { message: 'denied' }); }",
              "return (conf, ctx) => { ctx.setHeader('x-serverless', 'pre'); }",
            ],
          },
          'serverless-post-function': {
            phase: 'header_filter',
            functions: ["return (conf, ctx) => { ctx.setResponseHeader('x-post', String(ctx.status)); }"],
          },
        }),
      ],
      services: [],
      upstreams: [],
      consumers: [],
      consumer_groups: [],
      global_rules: [],
      plugin_configs: [],
      plugin_metadata: [],
      ssls: [],
    };
    dataPlane.applyConfig(snapshot);
    [{ port }] = await dataPlane.listen();
  });

  after(async () => {
    await dataPlane.close(1000);
    await upstream.close();
  });

  it('proxy-rewrite: path by regex_uri with the query kept, host, method and headers', async () => {
    const reply = await call(port, '/rw/books/42?q=1', { headers: { 'x-drop': 'secret' } });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.text) as { method: string; url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/v2/42/books?q=1');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.headers.host, 'backend.local');
    assert.equal(seen.headers['x-kind'], 'books');
    assert.equal(seen.headers['x-client'], '127.0.0.1');
    assert.equal(seen.headers['x-drop'], undefined);
  });

  it('response-rewrite: status, headers and a body filter, with the length of the new body', async () => {
    const reply = await call(port, '/rr');
    assert.equal(reply.status, 202);
    assert.equal(reply.headers['x-rewritten'], 'yes');
    assert.equal(reply.headers['content-type'], undefined);
    assert.equal(Number(reply.headers['content-length']), reply.body.length);
    assert.match(reply.text, /"verb":"GET"/);
    assert.doesNotMatch(reply.text, /"method"/);
  });

  it('response-rewrite: a new body only when vars match', async () => {
    assert.equal((await call(port, '/rr-body?swap=1')).text, 'replaced\n');
    assert.match((await call(port, '/rr-body?swap=0')).text, /"url":"\/rr-body\?swap=0"/);
  });

  it('redirect: Location with variables, and http to https', async () => {
    const moved = await call(port, '/old?id=9');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, '/new/9');
    const secure = await call(port, '/secure/page?x=1', { headers: { host: 'example.com' } });
    assert.equal(secure.status, 301);
    assert.equal(secure.headers.location, 'https://example.com/secure/page?x=1');
  });

  it('mocking: answers without reaching the upstream', async () => {
    const before = upstream.requests.length;
    const reply = await call(port, '/mock?who=ann');
    assert.equal(reply.status, 201);
    assert.equal(reply.text, '{"mocked":"ann"}');
    assert.equal(reply.headers['content-type'], 'application/json;charset=utf8');
    assert.equal(reply.headers['x-m'], '1');
    assert.match(String(reply.headers['x-mock-by']), /^Palisade\//);
    assert.equal(upstream.requests.length, before);
  });

  it('gzip: a 1 MiB page compressed on the offload pool, a small one inline, none without Accept-Encoding', async () => {
    const big = await call(port, '/html/big', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(big.status, 200);
    assert.equal(big.headers['content-encoding'], 'gzip');
    assert.equal(big.headers.vary, 'Accept-Encoding');
    assert.ok(big.body.length < BIG_HTML.length / 10);
    assert.deepEqual(gunzipSync(big.body), BIG_HTML);

    const small = await call(port, '/html/small', { headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(small.headers['content-encoding'], 'gzip');
    assert.deepEqual(gunzipSync(small.body), SMALL_HTML);

    const plain = await call(port, '/html/big');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body.length, BIG_HTML.length);
  });

  it('gzip: a chunked body of 1 MiB is de-chunked and compressed whole', async () => {
    const chunked = await call(port, '/html/chunked', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.headers['content-encoding'], 'gzip');
    assert.deepEqual(gunzipSync(chunked.body), BIG_HTML);
  });

  it('gzip: a chunked body that outgrows the hold goes out unfiltered, without a gzip label', async () => {
    const huge = await call(port, '/html/huge-chunked', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(huge.status, 200);
    assert.equal(huge.headers['content-encoding'], undefined);
    assert.equal(huge.body.length, 9 * BIG_HTML.length);
    assert.deepEqual(huge.body.subarray(0, BIG_HTML.length), BIG_HTML);
  });

  it('serverless: pre-function edits the request or ends it, post-function sees the response', async () => {
    const ok = await call(port, '/sls');
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.text) as { headers: Record<string, string> }).headers['x-serverless'], 'pre');
    assert.equal(ok.headers['x-post'], '200');
    const denied = await call(port, '/sls?deny=1');
    assert.equal(denied.status, 403);
    assert.deepEqual(JSON.parse(denied.text), { message: 'denied' });
  });
});

describe('misconfigured transformation and serverless plugins through the Admin API', () => {
  const upstreamConf = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
  let admin: Harness;
  let serverlessAdmin: Harness;

  before(async () => {
    const loader = new PluginLoader();
    loader.load();
    admin = await startAdmin({ plugins: new RegistryCatalog(() => loader.registry) });
    const withServerless = new PluginLoader({ enabled: undefined, pluginDir: undefined, serverless: true });
    withServerless.load();
    serverlessAdmin = await startAdmin({ plugins: new RegistryCatalog(() => withServerless.registry) });
  });
  after(async () => {
    await admin.close();
    await serverlessAdmin.close();
  });

  const put = (harness: Harness, plugins: Record<string, unknown>) =>
    harness.call('PUT', '/routes/1', { uri: '/x', plugins, upstream: upstreamConf });

  it('accepts valid configurations', async () => {
    for (const plugins of [
      { 'proxy-rewrite': { uri: '/a/$arg_b', headers: { 'X-A': '1' } } },
      { 'response-rewrite': { body: 'x', headers: { add: ['X-A: 1'] } } },
      { redirect: { regex_uri: ['^/a/(.*)', '/b/$1'] } },
      { mocking: { response_schema: { type: 'object' } } },
      { gzip: { types: '*' } },
    ]) {
      const reply = await put(admin, plugins);
      assert.ok(reply.status === 200 || reply.status === 201, `${JSON.stringify(plugins)}: ${reply.text}`);
    }
  });

  it('refuses invalid ones with APISIX error bodies', async () => {
    const cases: [string, unknown, string][] = [
      ['proxy-rewrite', { regex_uri: ['^/a', '/b', '^/c'] }, 'The length of regex_uri should be an even number'],
      ['proxy-rewrite', { headers: { 'X A': 'v' } }, 'invalid field character in header'],
      ['response-rewrite', { body_base64: true, body: '@@' }, 'invalid base64 content'],
      [
        'response-rewrite',
        { status_code: 600 },
        'property "status_code" validation failed: expected 600 to be at most 598',
      ],
      [
        'redirect',
        { http_to_https: true, append_query_string: true },
        'only one of `http_to_https` and `append_query_string` can be configured.',
      ],
      ['gzip', { comp_level: 0 }, 'property "comp_level" validation failed: expected 0 to be at least 1'],
    ];
    for (const [name, conf, error] of cases) {
      const reply = await put(admin, { [name]: conf });
      assert.equal(reply.status, 400, `${name}: ${reply.text}`);
      assert.deepEqual(reply.json, { error_msg: `failed to check the configuration of plugin ${name} err: ${error}` });
    }
  });

  it('serverless: unknown while off in config (the loader leaves it out); when on, refused unless its functions load', async () => {
    const disabled = await put(admin, { 'serverless-pre-function': { functions: ['return () => {}'] } });
    assert.equal(disabled.status, 400);
    assert.deepEqual(disabled.json, { error_msg: 'unknown plugin [serverless-pre-function]' });

    const ok = await put(serverlessAdmin, { 'serverless-post-function': { functions: ['return () => {}'] } });
    assert.ok(ok.status === 200 || ok.status === 201, ok.text);
    const bad = await put(serverlessAdmin, { 'serverless-pre-function': { functions: ['return 1'] } });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json, {
      error_msg:
        'failed to check the configuration of plugin serverless-pre-function err: ' +
        'only accept JavaScript function, the input code type is number',
    });
  });
});
