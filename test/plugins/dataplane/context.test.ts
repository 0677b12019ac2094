// Unit tests without sockets: the plugin context keeps one hidden class, reads
// its own request edits back, and hands head building byte-level edits; the
// runner's ordering, sync fast path and consumer merge; chunked decoding.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';

import { decodeChunked } from '../../../src/dataplane/chunked';
import {
  buildUpstreamHead,
  HeaderEdit,
  HeaderList,
  type HeaderEdits,
  type HeaderValue,
  insertAfterStatusLine,
  responsePassesThrough,
  rewriteResponseHead,
  statusLineEnd,
} from '../../../src/dataplane/head';
import { headerName, type HeaderName } from '../../../src/dataplane/header-name';
import { RequestState, type ClientEndpoint } from '../../../src/dataplane/request';
import { compileRouteTable } from '../../../src/dataplane/route-table';
import { OUT_SIZE } from '../../../src/native/layout';
import { ConsumerIndex } from '../../../src/plugins/consumers';
import { RequestContext, type PluginHost } from '../../../src/plugins/context';
import { OffloadPool } from '../../../src/plugins/offload';
import { runRequestPhases } from '../../../src/plugins/runner';
import type { ChainEntry, PluginChain, PluginModule } from '../../../src/plugins/types';
import { availableBackends } from '../../helpers/backends';
import { localUpstream, snapshot } from '../../helpers/dataplane';

v8.setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const backend = availableBackends()[0];
const client: ClientEndpoint = {
  remoteAddress: '10.0.0.9',
  remotePort: 4000,
  localAddress: '127.0.0.1',
  localPort: 9080,
};

function parse(text: string): RequestState {
  const out = new Int32Array(OUT_SIZE);
  const buf = Buffer.from(text, 'latin1');
  const n = backend.parseRequest(buf, 0, buf.length, -1, Buffer.from([10, 0, 0, 9]), out);
  assert.ok(n > 0, `parse failed: ${n}`);
  return new RequestState(buf, 0, n, out, client, out[1], out[6], out[7], Date.now());
}

/** A response head parsed into spans, as the connection hands it to head.ts. */
function parseResponseHead(text: string): { raw: Buffer; out: Int32Array; n: number } {
  const out = new Int32Array(OUT_SIZE);
  const raw = Buffer.from(text, 'latin1');
  const n = backend.parseResponse(raw, 0, raw.length, 1, out);
  assert.ok(n > 0, `parse failed: ${n}`);
  return { raw, out, n };
}

/** Head edits that set each name to its value (null: remove it), in order. */
function setEdits(...sets: Array<[string, HeaderValue | null]>): HeaderEdits {
  const entries: Array<HeaderEdit | HeaderName | HeaderValue | null> = [];
  let droppedLengths = 0;
  for (const [name, value] of sets) {
    const header = headerName(name);
    entries.push(HeaderEdit.Set, header, value);
    droppedLengths |= header.lengthBit;
  }
  return { entries, droppedLengths };
}

const host: PluginHost = {
  consumers: new ConsumerIndex([
    { username: 'jack', plugins: { auth: { key: 'k1' }, tag: { tag: 'jack' } } },
    { username: 'rose', plugins: { auth: { key: 'k2' } } },
  ]),
  offload: new OffloadPool({ size: 1 }),
  dict(name) {
    throw new Error(`no dict ${name}`);
  },
};
const noBody = { readRequestBody: () => {} };

function entry(plugin: PluginModule<unknown>, conf: unknown = {}): ChainEntry {
  return { plugin, conf, filter: null, errorResponse: undefined };
}

function chainOf(entries: ChainEntry[], merge?: (chain: PluginChain) => PluginChain): PluginChain {
  const phase = (name: keyof PluginModule) => entries.filter((e) => e.plugin[name] !== undefined);
  const chain: PluginChain = {
    rewrite: phase('rewrite'),
    access: phase('access'),
    before_proxy: phase('before_proxy'),
    header_filter: phase('header_filter'),
    body_filter: phase('body_filter'),
    log: phase('log'),
    passThroughResponse: true,
    mergeConsumer: () => (merge === undefined ? chain : merge(chain)),
  };
  return chain;
}

describe('plugin context', () => {
  it('keeps one hidden class however a context is used', () => {
    const fresh = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), chainOf([]), host, noBody);
    const used = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), chainOf([]), host, noBody);
    used.setHeader('X-A', '1');
    used.setResponseHeader('X-B', '2');
    used.setUri('/new');
    used.scratch('p').seen = true;
    used.attachConsumer(host.consumers.byName('jack')!);
    used.setRemoteAddr('1.2.3.4');
    used.setStatus(201);
    assert.ok(haveSameMap(fresh, used));
  });

  it('reads its own header edits back and resolves them for the upstream head', () => {
    const req = parse('GET /a?q=1 HTTP/1.1\r\nHost: a.test\r\nX-One: 1\r\nX-Two: 2\r\nX-Two: 3\r\nX-Keep: k\r\n\r\n');
    const ctx = new RequestContext(req, chainOf([]), host, noBody);
    ctx.setHeader('x-one', 'one');
    ctx.addHeader('X-Two', '4');
    ctx.addHeader('X-New', 'n1');
    ctx.setHeader('X-New', 'n2');
    ctx.addHeader('X-New', 'n3');
    assert.equal(ctx.header('X-One'), 'one');
    assert.equal(ctx.header('x-two'), '2, 3, 4');
    assert.equal(ctx.header('x-new'), 'n2, n3');
    assert.equal(ctx.header('x-keep'), 'k');
    ctx.setHeader('X-Keep', null);
    assert.equal(ctx.header('x-keep'), undefined);
    ctx.setMethod('post');
    ctx.setUri('/b?r=2');
    ctx.setHost('b.test');
    assert.throws(() => ctx.setHeader('X-Bad', 'a\r\nb'), /invalid value/);
    assert.throws(() => ctx.setHeader('Bad Name', 'a'), /invalid header name/);
    assert.throws(() => ctx.setUri('no-slash'), /invalid upstream uri/);

    const table = compileRouteTable(
      backend,
      snapshot({ routes: [{ id: 'r', uri: '/*', upstream: localUpstream([8080]) }] }),
      undefined,
    );
    const upstream = table.routes[0].upstream!;
    const node = upstream.balancer.nodes[0];
    const head = buildUpstreamHead(req, upstream, node, false, ctx.requestEdits()).toString('latin1');
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'POST /b?r=2 HTTP/1.1');
    assert.equal(lines[1], 'host: b.test'.replace('host', 'Host'));
    assert.ok(lines.includes('X-Two: 2') && lines.includes('X-Two: 3') && lines.includes('X-Two: 4'));
    assert.ok(lines.includes('x-one: one'));
    assert.ok(lines.includes('X-New: n2') && lines.includes('X-New: n3'));
    assert.ok(!lines.some((line) => line.startsWith('X-One: 1') || line.startsWith('X-Keep')));
    assert.ok(lines.includes('X-Forwarded-Host: a.test'));
    assert.ok(head.endsWith('\r\n\r\n'));
  });

  it('applies response edits by copying the head', () => {
    const { raw, out, n } = parseResponseHead('HTTP/1.1 200 OK\r\nX-Up: 1\r\nX-Drop: d\r\nContent-Length: 2\r\n\r\nok');
    const edits = setEdits(['X-Drop', null], ['X-RateLimit-Limit', 5]);
    const head = rewriteResponseHead(raw, 0, n, out, true, edits);
    assert.equal(
      head.toString('latin1'),
      'HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 2\r\nX-RateLimit-Limit: 5\r\nConnection: keep-alive\r\n\r\n',
    );
  });

  it('writes numbers as digits and keeps only the last Set of a name in the response head', () => {
    const ctx = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), chainOf([]), host, noBody);
    const remaining = headerName('X-RateLimit-Remaining');
    ctx.setResponseHeader(remaining, 5);
    ctx.setResponseHeader('x-ratelimit-remaining', 0);
    ctx.setResponseHeader('X-Big', 2 ** 53 - 1);
    ctx.setResponseHeader('X-Odd', -1.5);
    ctx.addResponseHeader('X-Up', 'mine');
    ctx.setResponseHeader('X-Gone', 'g');
    ctx.setResponseHeader('X-Gone', null);
    assert.equal(ctx.responseHeader(remaining), '0');
    assert.equal(ctx.responseHeader('x-big'), '9007199254740991');
    const edits = ctx.plainResponseEdits()!;

    const { raw, out, n } = parseResponseHead(
      'HTTP/1.1 200 OK\r\nX-Up: 1\r\nX-Gone: old\r\nContent-Length: 2\r\n\r\nok',
    );
    assert.equal(responsePassesThrough(raw, out, edits), false, 'X-Gone lines are left out');
    assert.equal(
      rewriteResponseHead(raw, 0, n, out, true, edits).toString('latin1'),
      'HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 2\r\nx-ratelimit-remaining: 0\r\n' +
        'X-Big: 9007199254740991\r\nX-Odd: -1.5\r\nX-Up: mine\r\nConnection: keep-alive\r\n\r\n',
    );

    // A head with nothing to leave out gets the lines in place, in the free bytes before it.
    const { raw: plain, out: plainOut, n: m } = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(responsePassesThrough(plain, plainOut, edits), true);
    const room = Buffer.alloc(100 + plain.length);
    plain.copy(room, 100);
    const from = insertAfterStatusLine(room, 100, 100 + statusLineEnd(plain, plainOut, m), edits);
    assert.equal(
      room.toString('latin1', from, 100 + m),
      'HTTP/1.1 200 OK\r\nx-ratelimit-remaining: 0\r\nX-Big: 9007199254740991\r\nX-Odd: -1.5\r\n' +
        'X-Up: mine\r\nContent-Length: 2\r\n\r\n',
    );
    assert.equal(insertAfterStatusLine(room, 10, 10 + statusLineEnd(plain, plainOut, m), edits), -1, 'too little room');
  });

  it('leaves room for the Connection line when the upstream sent none', () => {
    // The bound once counted `Connection: close`, five bytes shorter than the keep-alive line written here.
    const { raw, out, n } = parseResponseHead('HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n');
    assert.equal(
      rewriteResponseHead(raw, 0, n, out, true).toString('latin1'),
      'HTTP/1.1 204 No Content\r\nX-A: 1\r\nConnection: keep-alive\r\n\r\n',
    );
  });

  it('writes a repeated value from its kept line, and a changed one anew', () => {
    const { raw, out, n } = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const head = (count: number, name: string) =>
      rewriteResponseHead(raw, 0, n, out, true, setEdits(['X-Repeat-Limit', count], ['X-Repeat-User', name])).toString(
        'latin1',
      );
    const expected = (count: number, name: string) =>
      `HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Repeat-Limit: ${count}\r\nX-Repeat-User: ${name}\r\n` +
      'Connection: keep-alive\r\n\r\n';
    for (const [count, name] of [
      [100, 'jack'],
      [100, 'jack'],
      [100, 'jack'],
      [7, 'jack'],
      [7, 'rose'],
      [100, 'rose'],
      [100, 'rose'],
      [100, 'jack'],
    ] as const) {
      assert.equal(head(count, name), expected(count, name));
    }
  });

  it('checks a set value unless it is the one last written under that name', () => {
    const { raw, out, n } = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const name = headerName('X-Checked-User');
    const ctx = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), chainOf([]), host, noBody);
    rewriteResponseHead(raw, 0, n, out, true, setEdits(['X-Checked-User', 'jack'])); // written: now its last value
    assert.equal(name.lastValue, 'jack');
    ctx.setResponseHeader(name, 'jack');
    assert.equal(ctx.responseHeader(name), 'jack');
    assert.throws(() => ctx.setResponseHeader(name, 'jack\r\nX-Injected: 1'), /invalid value/);
    ctx.setResponseHeader(name, 'Ω'); // not latin1: goes out as its UTF-8 bytes
    assert.equal(ctx.responseHeader(name), Buffer.from('Ω', 'utf8').toString('latin1'));
  });

  it('edits a header list ignoring case', () => {
    const list = new HeaderList();
    list.add('Set-Cookie', 'a=1');
    list.add('set-cookie', 'b=2');
    list.add('X-A', '1');
    assert.equal(list.get('SET-COOKIE'), 'a=1, b=2');
    list.set('x-a', '2');
    assert.equal(list.get('X-A'), '2');
    list.remove('Set-Cookie');
    assert.deepEqual(list.names, ['x-a']);
  });

  it('finds consumers by credential and by name', () => {
    assert.equal(host.consumers.find('auth', 'key', 'k2')?.username, 'rose');
    assert.equal(host.consumers.find('auth', 'key', 'nope'), undefined);
    assert.equal(host.consumers.find('other', 'key', 'k1'), undefined);
    assert.equal(host.consumers.byName('jack')?.username, 'jack');
  });
});

describe('plugin runner', () => {
  it('runs phases in order, synchronously when every phase is', () => {
    const order: string[] = [];
    const a: PluginModule<unknown> = {
      name: 'a',
      version: '1',
      priority: 2,
      schema: {},
      rewrite: () => void order.push('a.rewrite'),
      access: () => void order.push('a.access'),
    };
    const b: PluginModule<unknown> = {
      name: 'b',
      version: '1',
      priority: 1,
      schema: {},
      rewrite: () => void order.push('b.rewrite'),
      before_proxy: () => void order.push('b.before_proxy'),
    };
    const ctx = new RequestContext(
      parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'),
      chainOf([entry(a), entry(b)]),
      host,
      noBody,
    );
    const result = runRequestPhases(ctx);
    assert.equal(result, undefined, 'not a promise');
    assert.deepEqual(order, ['a.rewrite', 'b.rewrite', 'a.access', 'b.before_proxy']);
  });

  it('merges a consumer in after rewrite and runs only the merged, non-auth rewrites', async () => {
    const ran: string[] = [];
    const auth: PluginModule<unknown> = {
      name: 'auth',
      version: '1',
      priority: 2500,
      type: 'auth',
      schema: {},
      async rewrite(_conf, ctx) {
        ran.push('auth');
        ctx.attachConsumer(ctx.findConsumer('auth', 'key', ctx.header('apikey') ?? '')!);
        return undefined;
      },
    };
    const tag: PluginModule<unknown> = {
      name: 'tag',
      version: '1',
      priority: 10,
      schema: {},
      rewrite: (conf) => void ran.push(`tag:${(conf as { tag: string }).tag}`),
      access: (conf) => void ran.push(`tag.access:${(conf as { tag: string }).tag}`),
    };
    const authEntry = entry(auth);
    const chain = chainOf([authEntry], () => chainOf([authEntry, entry(tag, { tag: 'jack' })]));
    const ctx = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\napikey: k1\r\n\r\n'), chain, host, noBody);
    const result = runRequestPhases(ctx);
    assert.ok(result instanceof Promise);
    assert.equal(await result, undefined);
    assert.deepEqual(ran, ['auth', 'tag:jack', 'tag.access:jack']);
    assert.equal(ctx.var('consumer_name'), 'jack');
  });

  it('replaces an exit body with _meta.error_response', () => {
    const deny: PluginModule<unknown> = {
      name: 'deny',
      version: '1',
      priority: 1,
      schema: {},
      access: (_conf, ctx) => ctx.exit(403, { message: 'original' }, { 'X-A': '1' }),
    };
    const denyEntry: ChainEntry = { ...entry(deny), errorResponse: 'custom' };
    const ctx = new RequestContext(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), chainOf([denyEntry]), host, noBody);
    assert.deepEqual(runRequestPhases(ctx), { status: 403, body: 'custom', headers: { 'X-A': '1' } });
  });
});

describe('chunked decoding', () => {
  it('joins chunks and skips extensions and trailers', () => {
    const raw = Buffer.from('3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n', 'latin1');
    assert.equal(decodeChunked(raw).toString(), 'abc0123456789');
    assert.equal(decodeChunked(Buffer.from('0\r\n\r\n')).length, 0);
    assert.throws(() => decodeChunked(Buffer.from('5\r\nab')), /truncated/);
  });
});
