// Loggers' include_resp_body and include_req_body end to end: a DataPlane with
// the built-in plugins, an upstream that answers per path, a real HTTP log
// collector and a real log file. A logger route without the options keeps the
// streamed pass-through response; with them the bodies land in the entry,
// bounded by max_*_body_bytes, and the _expr variants choose per request.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import { request as undiciRequest } from 'undici';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import { compileChain, createChainContext } from '../../../src/plugins/chain';
import { PluginLoader } from '../../../src/plugins/loader';
import type { Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { localUpstream } from '../../helpers/dataplane';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';
import { emptySnapshot } from '../runtime/support';

type Entry = Record<string, Record<string, unknown>>;

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Rejects after `ms` unless `promise` settles first. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// 'é' is two bytes in UTF-8: a 10-byte cut of this text falls inside the third one.
const ACCENTED = 'abcdeéééééééé';
const BIG_BODY = 'x'.repeat(200 * 1024);

describe('loggers with include_resp_body / include_req_body over real sockets', () => {
  let upstream: TestUpstream;
  let collector: Server;
  let collectorPort = 0;
  const entries: Entry[] = [];
  const directory = mkdtempSync(join(tmpdir(), 'palisade-logger-bodies-'));
  const logFile = join(directory, 'access.log');
  let dataPlane: DataPlane;
  let port = 0;
  let snapshot: ConfigSnapshot;
  let loader: PluginLoader;
  /** Resolves the held second half of /stream's answer. */
  let releaseStream: () => void = () => undefined;

  before(async () => {
    upstream = await startUpstream({
      handler: (req, res, body) => {
        const url = new URL(req.url ?? '/', 'http://upstream');
        const status = Number(url.searchParams.get('status') ?? '200');
        if (url.pathname.endsWith('/stream')) {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first-part;');
          new Promise<void>((resolve) => (releaseStream = resolve)).then(
            () => res.end('second-part'),
            () => undefined,
          );
          return;
        }
        if (url.pathname.endsWith('/accented')) {
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(ACCENTED);
          return;
        }
        if (url.pathname.endsWith('/big')) {
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(BIG_BODY);
          return;
        }
        // Chunked on purpose (no content-length): the held body is de-chunked before body_filter.
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(`answer to ${req.method ?? ''} ${url.pathname} with ${body.length} bytes`);
      },
    });
    collector = createServer((request, response) => {
      const parts: Buffer[] = [];
      request.on('data', (chunk: Buffer) => parts.push(chunk));
      request.on('end', () => {
        entries.push(JSON.parse(Buffer.concat(parts).toString()) as Entry);
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    collectorPort = (collector.address() as AddressInfo).port;

    const httpLogger = (extra: Record<string, unknown>) => ({
      'http-logger': { uri: `http://127.0.0.1:${collectorPort}/logs`, batch_max_size: 1, ...extra },
    });
    const route = (id: string, plugins: Record<string, unknown>): Route =>
      ({ id, uri: `/${id}/*`, plugins, upstream: localUpstream([upstream.port]) }) as Route;
    loader = new PluginLoader();
    loader.load();
    dataPlane = new DataPlane(loadBackend('js'), {
      listen: [{ host: '127.0.0.1', port: 0 }],
      plugins: { registry: loader.registry },
    });
    snapshot = {
      ...emptySnapshot(1),
      routes: [
        route('plain', httpLogger({})),
        route('resp', httpLogger({ include_resp_body: true })),
        route('resp-cut', httpLogger({ include_resp_body: true, max_resp_body_bytes: 10 })),
        route('resp-expr', httpLogger({ include_resp_body: true, include_resp_body_expr: [['status', '==', 500]] })),
        route('resp-format', httpLogger({ include_resp_body: true, log_format: { uri: '$uri', status: '$status' } })),
        route('req', httpLogger({ include_req_body: true, max_req_body_bytes: 16 })),
        route('req-expr', httpLogger({ include_req_body: true, include_req_body_expr: [['arg_log', '==', 'yes']] })),
        route('file', { 'file-logger': { path: logFile, batch_max_size: 1, include_resp_body: true } }),
        route('exit', {
          'fault-injection': { abort: { http_status: 403, body: 'refused here' } },
          ...httpLogger({ include_resp_body: true }),
        }),
        route('gz-first', {
          gzip: { types: '*', min_length: 1 },
          ...httpLogger({ include_resp_body: true, _meta: { priority: 1000 } }),
        }),
      ],
    };
    dataPlane.applyConfig(snapshot);
    [{ port }] = await dataPlane.listen();
  });

  after(async () => {
    releaseStream();
    await dataPlane.close(1000);
    await upstream.close();
    collector.closeAllConnections();
    await new Promise((resolve) => collector.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  });

  async function call(path: string, options: { method?: string; body?: string | Readable } = {}) {
    const response = await undiciRequest(`http://127.0.0.1:${port}${path}`, {
      method: (options.method ?? 'GET') as 'GET',
      body: options.body,
      headersTimeout: 3000,
      bodyTimeout: 3000,
    });
    return { status: response.statusCode, text: await response.body.text() };
  }

  /** The one entry the request to `path` logs (batch_max_size 1: one POST per entry). */
  async function loggedEntry(path: string, options: Parameters<typeof call>[1] = {}) {
    entries.length = 0;
    const answer = await call(path, options);
    await eventually(() => entries.length === 1);
    return { answer, entry: entries[0] };
  }

  function chainOf(routeId: string) {
    const route = snapshot.routes.find((candidate) => candidate.id === routeId)!;
    return compileChain(route, createChainContext(snapshot, loader.registry))!;
  }

  it('a logger without include_resp_body keeps the pass-through response: no body_filter, nothing held', async () => {
    const chain = chainOf('plain');
    assert.equal(chain.passThroughResponse, true);
    assert.deepEqual(chain.body_filter, []);
    assert.deepEqual(chain.access, [], 'no include_req_body: access is not run either');
    assert.equal(chain.log.length, 1);

    entries.length = 0;
    const response = await undiciRequest(`http://127.0.0.1:${port}/plain/stream`, { headersTimeout: 10_000 });
    const reader = response.body[Symbol.asyncIterator]();
    // The upstream holds its second half until the client has the first: only a streamed response gets here.
    const first = await within(reader.next(), 3000, 'the first half of a streamed response');
    assert.equal(Buffer.from(first.value as Buffer).toString(), 'first-part;');
    releaseStream();
    let rest = '';
    for (let next = await reader.next(); next.done !== true; next = await reader.next()) {
      rest += Buffer.from(next.value as Buffer).toString();
    }
    assert.equal(rest, 'second-part');
    await eventually(() => entries.length === 1);
    assert.equal(entries[0].response.status, 200);
    assert.equal('body' in entries[0].response, false);
    assert.equal('body' in entries[0].request, false);
  });

  it('include_resp_body logs the response body as response.body, and the client gets it unchanged', async () => {
    const chain = chainOf('resp');
    assert.equal(chain.passThroughResponse, false);
    assert.deepEqual(
      chain.body_filter.map((entry) => entry.plugin.name),
      ['http-logger'],
    );
    const { answer, entry } = await loggedEntry('/resp/x?status=201', { method: 'POST', body: 'hello' });
    assert.equal(answer.status, 201);
    assert.equal(answer.text, 'answer to POST /resp/x with 5 bytes');
    assert.equal(entry.response.body, answer.text);
    assert.equal(entry.response.status, 201);
    assert.equal('body_truncated' in entry.response, false);
    assert.equal('body' in entry.request, false, 'the request body only with include_req_body');
  });

  it('a body over max_resp_body_bytes is logged cut, at a character boundary, and marked body_truncated', async () => {
    const { answer, entry } = await loggedEntry('/resp-cut/accented');
    assert.equal(answer.text, ACCENTED, 'the client gets the whole body');
    assert.equal(entry.response.body, 'abcdeéé', '10 bytes would split the third é: 9 are kept');
    assert.equal(entry.response.body_truncated, true);

    const big = await loggedEntry('/resp/big');
    assert.equal(big.answer.text.length, BIG_BODY.length);
    assert.equal((big.entry.response.body as string).length, BIG_BODY.length, '200 KiB is under the 512 KiB default');
  });

  it('include_resp_body_expr is evaluated on the response: the body only for a 500', async () => {
    const ok = await loggedEntry('/resp-expr/x?status=200');
    assert.equal(ok.entry.response.status, 200);
    assert.equal('body' in ok.entry.response, false);
    const failed = await loggedEntry('/resp-expr/x?status=500');
    assert.equal(failed.entry.response.status, 500);
    assert.equal(failed.entry.response.body, 'answer to GET /resp-expr/x with 0 bytes');
  });

  it('with a custom log_format the response body comes as response: { body }', async () => {
    const { entry } = await loggedEntry('/resp-format/x');
    assert.deepEqual(entry, {
      uri: '/resp-format/x',
      status: '200',
      response: { body: 'answer to GET /resp-format/x with 0 bytes' },
    } as unknown as Entry);
  });

  it('include_req_body logs the request body as request.body', async () => {
    const small = await loggedEntry('/req/x', { method: 'POST', body: 'small body' });
    assert.equal(small.entry.request.body, 'small body');
    assert.equal('body' in small.entry.response, false, 'the response body only with include_resp_body');
  });

  const large = 'L'.repeat(100);

  it('a request body over max_req_body_bytes (content-length) goes upstream whole and is marked body_truncated', async () => {
    const sized = await loggedEntry('/req/x', { method: 'POST', body: large });
    assert.equal(sized.answer.text, 'answer to POST /req/x with 100 bytes');
    assert.equal('body' in sized.entry.request, false);
    assert.equal(sized.entry.request.body_truncated, true);
  });

  it('include_req_body_expr chooses per request, before the body is read', async () => {
    const skipped = await loggedEntry('/req-expr/x', { method: 'POST', body: 'not logged' });
    assert.equal(skipped.answer.text, 'answer to POST /req-expr/x with 10 bytes');
    assert.equal('body' in skipped.entry.request, false);
    const logged = await loggedEntry('/req-expr/x?log=yes', { method: 'POST', body: 'logged' });
    assert.equal(logged.answer.text, 'answer to POST /req-expr/x with 6 bytes');
    assert.equal(logged.entry.request.body, 'logged');
  });

  it('file-logger writes the response body into its line', async () => {
    assert.equal((await call('/file/x')).status, 200);
    await eventually(() => {
      try {
        return readFileSync(logFile, 'utf8').endsWith('\n');
      } catch {
        return false;
      }
    });
    const line = JSON.parse(readFileSync(logFile, 'utf8').trim()) as Entry;
    assert.equal(line.response.body, 'answer to GET /file/x with 0 bytes');
    assert.equal(line.route_id as unknown, 'file');
  });

  it("a plugin's exit is logged with its body, as APISIX's body_filter sees it", async () => {
    const { answer, entry } = await loggedEntry('/exit/x');
    assert.equal(answer.status, 403);
    assert.equal(entry.response.status, 403);
    assert.equal(entry.response.body, 'refused here');
    assert.equal(
      upstream.requests.some((seen) => seen.url === '/exit/x'),
      false,
    );
  });

  it('with gzip on the route, a logger given a _meta.priority above gzip logs the body before compression', async () => {
    entries.length = 0;
    const response = await undiciRequest(`http://127.0.0.1:${port}/gz-first/x`, {
      headers: { 'accept-encoding': 'gzip' },
      headersTimeout: 3000,
      bodyTimeout: 3000,
    });
    assert.equal(response.headers['content-encoding'], 'gzip');
    const received = gunzipSync(Buffer.from(await response.body.arrayBuffer())).toString();
    assert.equal(received, 'answer to GET /gz-first/x with 0 bytes');
    await eventually(() => entries.length === 1);
    assert.equal(entries[0].response.body, received);
  });

  // A chunked body over readBody()'s limit: the reader gives up, and what was read goes upstream ahead of the rest.
  it('a chunked request body a little over max_req_body_bytes goes upstream whole', async () => {
    const chunked = await loggedEntry('/req/x', {
      method: 'POST',
      body: Readable.from([large.slice(0, 50), large.slice(50)]),
    });
    assert.equal(chunked.answer.text, 'answer to POST /req/x with 100 bytes');
    assert.equal(chunked.entry.request.body_truncated, true);
  });

  it('a chunked request body far over max_req_body_bytes goes upstream whole', async () => {
    const longChunks = Array.from({ length: 10 }, () => 'C'.repeat(1024));
    const long = await loggedEntry('/req/x', { method: 'POST', body: Readable.from(longChunks) });
    assert.equal(long.answer.text, 'answer to POST /req/x with 10240 bytes');
    assert.equal(long.entry.request.body_truncated, true);
  });
});
