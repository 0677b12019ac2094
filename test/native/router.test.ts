// Route matching through parseRequest with real request bytes, run against
// every backend, plus a randomized cross-check of the three backends against
// each other and against a plain reference model of the ordering rules.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { loadBackend } from '../../src/native';
import type { BackendName, NativeBackend } from '../../src/native';
import { MAX_CANDIDATES, OUT_SIZE, Out, ParseError } from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';
import { extractParams } from '../../src/native/route-params';
import {
  assembleRouterSpec,
  encodeRouteRecord,
  encodeRouterSpec,
  methodMask,
  parseAddressRange,
  parseUriPattern,
  SPEC_MAGIC,
} from '../../src/native/router-spec';
import type { RouteMatchSpec } from '../../src/native/router-spec';
import { referenceUri } from './uri-model';
import { seededRandom } from '../helpers/random';

const BACKENDS: readonly BackendName[] = ['ffi', 'napi', 'js'];
const BUILD_FILES: Record<BackendName, string | undefined> = { ffi: sharedLibraryPath, napi: addonPath, js: undefined };

function missingBuild(name: BackendName): string | false {
  const file = BUILD_FILES[name];
  return file !== undefined && !existsSync(file) ? `${file} is missing; run npm run build:native` : false;
}

function route(fields: Partial<RouteMatchSpec>): RouteMatchSpec {
  return { priority: 0, methods: [], hosts: [], uris: ['/*'], remoteAddrs: [], ...fields };
}

/** The client address as the data plane passes it: 4 bytes for IPv4, 16 for IPv6. */
function clientIp(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  return Buffer.from(parseAddressRange(text).bytes);
}

interface RequestShape {
  method?: string;
  path: string;
  /** Host header value; undefined sends an HTTP/1.0 request without one. */
  host?: string;
  ip?: string;
}

/** A realistic request head around the interesting parts. */
function requestHead({ method = 'GET', path, host }: RequestShape): Buffer {
  const lines = [host === undefined ? `${method} ${path}?q=1 HTTP/1.0` : `${method} ${path}?q=1 HTTP/1.1`];
  if (host !== undefined) lines.push(`Host: ${host}`);
  lines.push('User-Agent: router-test', 'Accept: */*', '', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

const out = new Int32Array(OUT_SIZE);

function candidates(backend: NativeBackend, router: number, request: RequestShape): number[] {
  const head = requestHead(request);
  const n = backend.parseRequest(head, 0, head.length, router, clientIp(request.ip ?? '127.0.0.1'), out);
  assert.equal(n, head.length, `parse of ${JSON.stringify(request)} returned ${n}`);
  return Array.from(out.subarray(Out.Routes, Out.Routes + out[Out.RouteCount]));
}

/** Build a table, run fn with a matcher, free the table. */
function withTable(
  backend: NativeBackend,
  routes: readonly RouteMatchSpec[],
  fn: (match: (r: RequestShape) => number[]) => void,
) {
  const handle = backend.routerBuild(encodeRouterSpec(routes));
  assert.ok(handle >= 0, `routerBuild returned ${handle}`);
  try {
    fn((request) => candidates(backend, handle, request));
  } finally {
    backend.routerFree(handle);
  }
}

// ---- a reference model: every rule written out as a sort key, no indexes ----

function uriRegExp(uri: string): RegExp {
  const trailing = uri.endsWith('*');
  const body = trailing ? uri.slice(0, -1) : uri;
  let source = '';
  for (let i = 0; i < body.length; i++) {
    const atSegmentStart = i === 0 || body[i - 1] === '/';
    if (atSegmentStart && body[i] === ':') {
      source += '[^/]+';
      while (i + 1 < body.length && body[i + 1] !== '/') i++;
    } else if (atSegmentStart && body[i] === '*') {
      source += '.*';
      break;
    } else {
      source += body[i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}${trailing ? '.*' : ''}$`, 's');
}

function staticLength(uri: string): number {
  const body = uri.endsWith('*') ? uri.slice(0, -1) : uri;
  for (let i = 0; i < body.length; i++) {
    if ((i === 0 || body[i - 1] === '/') && (body[i] === ':' || body[i] === '*')) return i;
  }
  return body.length;
}

function inRange(ip: Uint8Array, cidr: string): boolean {
  const range = parseAddressRange(cidr);
  for (let bit = 0; bit < range.bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((ip[bit >> 3] & mask) !== (range.bytes[bit >> 3] & mask)) return false;
  }
  return true;
}

function referenceCandidates(routes: readonly RouteMatchSpec[], request: RequestShape): number[] {
  const method = request.method ?? 'GET';
  const host = (request.host ?? '').replace(/:\d+$/, '').toLowerCase();
  const ip = parseAddressRange(request.ip ?? '127.0.0.1').bytes;
  // Routes match $uri, the normalised path.
  const path = referenceUri(Buffer.from(request.path, 'latin1'))?.toString('latin1') ?? '';
  const ranked: { index: number; key: number[] }[] = [];
  routes.forEach((r, index) => {
    const groupRanks: number[] = [];
    if (r.hosts.length === 0) groupRanks.push(1e6);
    else if (host !== '') {
      for (const h of r.hosts.map((x) => x.toLowerCase())) {
        if (h === host) groupRanks.push(0);
        else if (h.startsWith('*') && host.length > h.length - 1 && host.endsWith(h.slice(1))) {
          groupRanks.push(1 + (1000 - (h.length - 1)));
        }
      }
    }
    let best: number[] | undefined;
    for (const group of groupRanks) {
      for (const uri of r.uris) {
        if (!uriRegExp(uri).test(path)) continue;
        const exact = !uri.endsWith('*') && staticLength(uri) === uri.length;
        const key = exact
          ? [group, 0, 0, -r.priority, 0, index]
          : [group, 1, -staticLength(uri), -r.priority, -Buffer.byteLength(uri), index];
        if (!best || compareKeys(key, best) < 0) best = key;
      }
    }
    if (!best) return;
    const mask = methodMask(r.methods);
    const code = methodMask([method]);
    if (mask !== 0 && (code === 1 || (mask & code) === 0)) return;
    if (r.remoteAddrs.length > 0 && !r.remoteAddrs.some((cidr) => inRange(ip, cidr))) return;
    ranked.push({ index, key: best });
  });
  ranked.sort((a, b) => compareKeys(a.key, b.key));
  return ranked.slice(0, MAX_CANDIDATES).map((r) => r.index);
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

// ---- the suite, once per backend ----

for (const name of BACKENDS) {
  const skip = missingBuild(name);
  describe(`router (${name})`, { skip }, () => {
    let backend: NativeBackend;
    before(() => {
      backend = loadBackend(name);
    });

    it('exact beats prefix, prefixes longest first, params and catch-alls', () => {
      const routes = [
        route({ uris: ['/a*'], priority: 10 }), // 0
        route({ uris: ['/a'] }), // 1
        route({ uris: ['/a/b*'] }), // 2
        route({ uris: ['/user/:name'] }), // 3
        route({ uris: ['/files/*path'] }), // 4
        route({ uris: ['/user/:name/posts/:post'] }), // 5
        route({ uris: ['/blog/bar*'] }), // 6
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/a', host: 'x' }), [1, 0]);
        assert.deepEqual(match({ path: '/ab', host: 'x' }), [0]);
        assert.deepEqual(match({ path: '/a/b/c', host: 'x' }), [2, 0]);
        assert.deepEqual(match({ path: '/a/b', host: 'x' }), [2, 0]);
        assert.deepEqual(match({ path: '/user/bob', host: 'x' }), [3]);
        assert.deepEqual(match({ path: '/user/', host: 'x' }), []);
        assert.deepEqual(match({ path: '/user/bob/x', host: 'x' }), []);
        assert.deepEqual(match({ path: '/user/bob/posts/7', host: 'x' }), [5]);
        assert.deepEqual(match({ path: '/user/bob/posts/', host: 'x' }), []);
        assert.deepEqual(match({ path: '/files/', host: 'x' }), [4]);
        assert.deepEqual(match({ path: '/files/a/b.txt', host: 'x' }), [4]);
        assert.deepEqual(match({ path: '/files', host: 'x' }), []);
        assert.deepEqual(match({ path: '/blog/bar', host: 'x' }), [6]);
        assert.deepEqual(match({ path: '/blog/bar/x', host: 'x' }), [6]);
        assert.deepEqual(match({ path: '/blog/ba', host: 'x' }), []);
        assert.deepEqual(match({ path: '/b', host: 'x' }), []);
      });
    });

    it('matches $uri, the normalised path, not the raw bytes', () => {
      const routes = [route({ uris: ['/a b'] }), route({ uris: ['/a%20b'] }), route({ uris: ['/admin'] })];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/a%20b', host: 'x' }), [0]);
        assert.deepEqual(match({ path: '/a%2520b', host: 'x' }), [1]);
        for (const path of ['/%61dmin', '//admin', '/./admin', '/x/../admin', '/x/%2e%2E/admin', '/admin#x']) {
          assert.deepEqual(match({ path, host: 'x' }), [2], path);
        }
        assert.deepEqual(match({ path: '/ADMIN', host: 'x' }), []);
        assert.deepEqual(match({ path: '/admin/', host: 'x' }), []);
      });
    });

    it('orders by priority, then uri length, then index', () => {
      const routes = [
        route({ uris: ['/p/*'], priority: 1 }), // 0
        route({ uris: ['/p/*'], priority: 5 }), // 1
        route({ uris: ['/p/*'], priority: 5 }), // 2
        route({ uris: ['/p/:x'], priority: 1 }), // 3: same static length, longer uri than route 0
        route({ uris: ['/p/x'], priority: -3 }), // 4: exact beats every prefix
        route({ uris: ['/p/x'], priority: 2 }), // 5
        route({ uris: ['/p/*any'], priority: 1 }), // 6: longest uri at priority 1
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/p/x', host: 'x' }), [5, 4, 1, 2, 6, 3, 0]);
        assert.deepEqual(match({ path: '/p/y/z', host: 'x' }), [1, 2, 6, 0]);
      });
    });

    it('tries the exact host, then wildcards longest first, then hostless routes', () => {
      const routes = [
        route({ uris: ['/*'] }), // 0 hostless
        route({ uris: ['/*'], hosts: ['*.foo.com'] }), // 1
        route({ uris: ['/*'], hosts: ['*.b.foo.com'] }), // 2
        route({ uris: ['/*'], hosts: ['a.b.foo.com'] }), // 3
        route({ uris: ['/exact'] }), // 4 hostless exact path
        route({ uris: ['/*'], hosts: ['other.com', 'A.B.FOO.COM'] }), // 5 upper case in the spec
        route({ uris: ['/*'], hosts: ['*'] }), // 6 any host
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/exact', host: 'a.b.foo.com' }), [3, 5, 2, 1, 6, 4, 0]);
        assert.deepEqual(match({ path: '/x', host: 'z.b.foo.com' }), [2, 1, 6, 0]);
        assert.deepEqual(match({ path: '/x', host: 'b.foo.com' }), [1, 6, 0]);
        assert.deepEqual(match({ path: '/x', host: 'foo.com' }), [6, 0]);
        assert.deepEqual(match({ path: '/exact', host: 'elsewhere.org' }), [6, 4, 0]);
        assert.deepEqual(match({ path: '/exact' }), [4, 0]);
      });
    });

    it('compares hosts case-insensitively and without the port', () => {
      const routes = [
        route({ uris: ['/*'], hosts: ['api.example.com'] }),
        route({ uris: ['/*'], hosts: ['*.test.com'] }),
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/', host: 'API.Example.COM' }), [0]);
        assert.deepEqual(match({ path: '/', host: 'api.example.com:8443' }), [0]);
        assert.deepEqual(match({ path: '/', host: 'WWW.TEST.COM:80' }), [1]);
        assert.deepEqual(match({ path: '/', host: 'api.example.co' }), []);
      });
    });

    it('matches an IPv6 literal host without its port', () => {
      withTable(backend, [route({ hosts: ['[::1]'] }), route({ hosts: ['*:1]'] })], (match) => {
        assert.deepEqual(match({ path: '/', host: '[::1]:8080' }), [0, 1]);
      });
    });

    it('matches paths and prefixes longer than the prefix hash cache', () => {
      const long = '/' + 'x'.repeat(600);
      const routes = [route({ uris: [`${long}*`] }), route({ uris: [`${long}/y`] }), route({ uris: [`${long}/:id`] })];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: `${long}/y`, host: 'x' }), [1, 2, 0]);
        assert.deepEqual(match({ path: `${long}/z`, host: 'x' }), [2, 0]);
        assert.deepEqual(match({ path: long.slice(0, 550), host: 'x' }), []);
      });
    });

    it('hands out and reuses many handles', () => {
      const handles = Array.from({ length: 40 }, (_, i) =>
        backend.routerBuild(encodeRouterSpec([route({ uris: [`/${i}`] })])),
      );
      assert.equal(new Set(handles).size, 40);
      handles.forEach((h, i) => assert.deepEqual(candidates(backend, h, { path: `/${i}`, host: 'x' }), [0]));
      for (const h of handles) backend.routerFree(h);
      backend.routerFree(handles[0]); // freeing twice, or an unknown handle, is harmless
      backend.routerFree(100000);
      backend.routerFree(-5);
    });

    it('checks the method mask', () => {
      const routes = [
        route({ methods: ['GET', 'HEAD'] }),
        route({ methods: ['POST'] }),
        route({ methods: [] }),
        route({ methods: ['PURGE'] }),
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ method: 'GET', path: '/', host: 'x' }), [0, 2]);
        assert.deepEqual(match({ method: 'HEAD', path: '/', host: 'x' }), [0, 2]);
        assert.deepEqual(match({ method: 'POST', path: '/', host: 'x' }), [1, 2]);
        assert.deepEqual(match({ method: 'PURGE', path: '/', host: 'x' }), [2, 3]);
        assert.deepEqual(match({ method: 'BREW', path: '/', host: 'x' }), [2]);
      });
    });

    it('checks remote addresses, IPv4 and IPv6, with IPv4-mapped addresses equal to IPv4', () => {
      const routes = [
        route({ remoteAddrs: ['10.0.0.0/8'] }), // 0
        route({ remoteAddrs: ['192.168.1.7'] }), // 1
        route({ remoteAddrs: ['2001:db8::/32'] }), // 2
        route({ remoteAddrs: ['::ffff:0:0/96'] }), // 3: every IPv4 client
        route({ remoteAddrs: ['::1', '172.16.0.0/12'] }), // 4
        route({ remoteAddrs: ['0.0.0.0/0'] }), // 5
        route({ remoteAddrs: ['10.1.2.3/31'] }), // 6: 10.1.2.2 and 10.1.2.3
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/', host: 'x', ip: '10.1.2.3' }), [0, 3, 5, 6]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '10.1.2.4' }), [0, 3, 5]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '192.168.1.7' }), [1, 3, 5]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '192.168.1.8' }), [3, 5]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '2001:db8:1::5' }), [2]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '2001:db9::5' }), []);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '::1' }), [4]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '172.31.255.255' }), [3, 4, 5]);
        assert.deepEqual(match({ path: '/', host: 'x', ip: '::ffff:10.0.0.1' }), [0, 3, 5]);
      });
    });

    it('lists a route with several uris once, at its best uri', () => {
      const routes = [
        route({ uris: ['/a*', '/a/b/c', '/a/:x/c'] }), // 0
        route({ uris: ['/a/b*'] }), // 1
        route({ uris: ['/a/b/*', '/z'], hosts: ['h.com', '*.com'] }), // 2
      ];
      withTable(backend, routes, (match) => {
        assert.deepEqual(match({ path: '/a/b/c', host: 'x' }), [0, 1]);
        assert.deepEqual(match({ path: '/a/q/c', host: 'x' }), [0]);
        assert.deepEqual(match({ path: '/a/b/d', host: 'x' }), [1, 0]);
        assert.deepEqual(match({ path: '/a/b/c', host: 'h.com' }), [2, 0, 1]);
      });
    });

    it(`writes at most ${MAX_CANDIDATES} candidates, best first`, () => {
      const routes = Array.from({ length: 40 }, (_, i) => route({ uris: ['/*'], priority: i % 7 }));
      withTable(backend, routes, (match) => {
        const expected = routes
          .map((r, i) => ({ i, p: r.priority }))
          .sort((a, b) => b.p - a.p || a.i - b.i)
          .slice(0, MAX_CANDIDATES)
          .map((r) => r.i);
        assert.deepEqual(match({ path: '/anything', host: 'x' }), expected);
      });
    });

    it('builds a new table while the old one is in use, then frees the old one', () => {
      const tableA = backend.routerBuild(encodeRouterSpec([route({ uris: ['/a'] })]));
      const matchA = () => candidates(backend, tableA, { path: '/a', host: 'x' });
      assert.deepEqual(matchA(), [0]);
      const tableB = backend.routerBuild(encodeRouterSpec([route({ uris: ['/b'] }), route({ uris: ['/a'] })]));
      assert.notEqual(tableA, tableB);
      assert.deepEqual(matchA(), [0]);
      assert.deepEqual(candidates(backend, tableB, { path: '/a', host: 'x' }), [1]);
      backend.routerFree(tableA);
      assert.deepEqual(candidates(backend, tableB, { path: '/b', host: 'x' }), [0]);
      const head = requestHead({ path: '/a', host: 'x' });
      assert.equal(backend.parseRequest(head, 0, head.length, tableA, clientIp('127.0.0.1'), out), ParseError.Router);
      const tableC = backend.routerBuild(encodeRouterSpec([]));
      assert.equal(tableC, tableA, 'a freed handle is reused');
      assert.deepEqual(candidates(backend, tableC, { path: '/a', host: 'x' }), []);
      backend.routerFree(tableC);
      backend.routerFree(tableB);
    });

    it('matches without a router: route count -1', () => {
      const head = requestHead({ path: '/a', host: 'x' });
      assert.equal(backend.parseRequest(head, 0, head.length, -1, clientIp('127.0.0.1'), out), head.length);
      assert.equal(out[Out.RouteCount], -1);
    });

    it('rejects malformed specs with a negative result', () => {
      const good = encodeRouterSpec([route({ uris: ['/a/:b/*c'], hosts: ['h'], remoteAddrs: ['10.0.0.0/8'] })]);
      const corrupt = (edit: (b: Buffer) => Buffer) => edit(Buffer.from(good));
      const bad: [string, Buffer][] = [
        ['empty', Buffer.alloc(0)],
        ['junk', Buffer.from('not a route spec')],
        ['bad magic', corrupt((b) => (b.writeUInt32LE(SPEC_MAGIC + 1, 0), b))],
        ['truncated', good.subarray(0, good.length - 1)],
        ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
        ['route count too high', corrupt((b) => (b.writeUInt32LE(2, 4), b))],
        ['reserved field set', corrupt((b) => (b.writeUInt16LE(1, 22), b))],
        ['prefix bits over 128', corrupt((b) => ((b[b.length - 17] = 129), b))],
      ];
      // The uri record: after 8 header + 16 route + 2 host bytes: uri_len, static_len, static, flags, count, tokens.
      const uriAt = 8 + 16 + 2;
      const staticLen = good.readUInt16LE(uriAt + 2);
      const flagsAt = uriAt + 4 + staticLen;
      bad.push(['bad flags', corrupt((b) => ((b[flagsAt] = 2), b))]);
      bad.push(['bad token type', corrupt((b) => ((b[flagsAt + 2] = 7), b))]);
      bad.push(['catch-all not last', corrupt((b) => ((b[flagsAt + 2] = 2), b))]);
      for (const [what, spec] of bad) assert.ok(backend.routerBuild(spec) < 0, what);
      const handle = backend.routerBuild(good);
      assert.ok(handle >= 0);
      backend.routerFree(handle);
    });

    it('builds 10,000 routes and matches each kind correctly', () => {
      const routes = tenThousandRoutes();
      withTable(backend, routes, (match) => {
        for (let k = 0; k < routes.length; k += 37) {
          const host = k % 10 === 0 ? `h${k}.example.com` : 'other.example.com';
          const path = k % 3 === 0 ? `/exact/${k}` : k % 3 === 1 ? `/prefix/${k}/deep/path` : `/param/${k}/77`;
          assert.deepEqual(match({ path, host }), [k], `route ${k}`);
        }
        assert.deepEqual(match({ path: '/exact/30', host: 'other.example.com' }), []);
        assert.deepEqual(match({ path: '/param/2/', host: 'x' }), []);
      });
    });
  });
}

function tenThousandRoutes(): RouteMatchSpec[] {
  return Array.from({ length: 10000 }, (_, k) =>
    route({
      uris: [k % 3 === 0 ? `/exact/${k}` : k % 3 === 1 ? `/prefix/${k}/*` : `/param/${k}/:id`],
      hosts: k % 10 === 0 ? [`h${k}.example.com`] : [],
      methods: k % 4 === 0 ? ['GET', 'POST'] : [],
    }),
  );
}

describe('router backends agree with each other and with the reference model', () => {
  const available = BACKENDS.filter((name) => !missingBuild(name));

  it('gives identical candidate lists on random tables and requests', () => {
    const backends = available.map((name) => loadBackend(name));
    const random = seededRandom(0x5eed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const segments = ['a', 'b', 'ab', 'user', '42', 'x.y', ':id', ':n', '*rest', '*'];
    const pathSegments = ['a', 'b', 'ab', 'user', '42', 'x.y', '', 'A'];
    const specHosts = ['a.com', 'b.a.com', '*.a.com', '*.b.a.com', '*a.com', 'c.com', 'B.A.com'];
    const requestHosts = ['a.com', 'b.a.com', 'x.b.a.com', 'X.B.A.COM:81', 'ba.com', 'c.com', 'zz.org'];
    const addrs = ['10.0.0.0/8', '10.1.0.0/16', '::1', '::ffff:0:0/96', '2001:db8::/32', '127.0.0.1'];
    const ips = ['10.1.2.3', '10.2.0.1', '127.0.0.1', '::1', '2001:db8::9', '::ffff:10.1.0.1'];
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'BREW'];
    const randomUri = (): string => {
      const parts = Array.from({ length: Math.floor(random() * 4) }, () => pick(segments));
      return '/' + parts.join('/') + (random() < 0.3 ? '*' : '');
    };
    const some = <T>(items: readonly T[], chance: number, max: number): T[] =>
      random() < chance ? Array.from({ length: 1 + Math.floor(random() * max) }, () => pick(items)) : [];

    let compared = 0;
    for (let table = 0; table < 250; table++) {
      const routes = Array.from({ length: 1 + Math.floor(random() * 30) }, () =>
        route({
          priority: Math.floor(random() * 3) - 1,
          uris: Array.from({ length: 1 + Math.floor(random() * 2) }, randomUri),
          hosts: some(specHosts, 0.4, 2),
          methods: some(methods.slice(0, 4), 0.3, 2),
          remoteAddrs: some(addrs, 0.2, 2),
        }),
      );
      const spec = encodeRouterSpec(routes);
      const handles = backends.map((b) => b.routerBuild(spec));
      for (let i = 0; i < 24; i++) {
        const request: RequestShape = {
          method: pick(methods),
          path: '/' + Array.from({ length: Math.floor(random() * 4) }, () => pick(pathSegments)).join('/'),
          host: random() < 0.85 ? pick(requestHosts) : undefined,
          ip: pick(ips),
        };
        const expected = referenceCandidates(routes, request);
        backends.forEach((b, k) => {
          const got = candidates(b, handles[k], request);
          assert.deepEqual(got, expected, `${b.name} table ${table}: ${JSON.stringify({ routes, request })}`);
        });
        compared++;
      }
      backends.forEach((b, k) => b.routerFree(handles[k]));
    }
    assert.equal(compared, 250 * 24);
  });

  it('accepts and rejects the same corrupted specs, and matches them alike', () => {
    const backends = available.map((name) => loadBackend(name));
    const random = seededRandom(0xc0ffee);
    const good = encodeRouterSpec([
      route({ uris: ['/a/:b/*c', '/x*', '/e'], hosts: ['h.com', '*.com'], remoteAddrs: ['10.0.0.0/8', '::1'] }),
      route({ uris: ['/a/b/:c/d', '/'], methods: ['GET'], priority: 3 }),
      route({ uris: ['/e*'], hosts: ['E.com'] }),
    ]);
    const requests: RequestShape[] = ['/a/b/c', '/x', '/e', '/a/b/q/d', '/'].flatMap((path) => [
      { path, host: 'a.h.com', ip: '10.1.2.3' },
      { path, host: 'e.com', ip: '::1' },
      { path },
    ]);
    let accepted = 0;
    for (let i = 0; i < 1500; i++) {
      const spec = Buffer.from(good);
      for (let edits = 1 + Math.floor(random() * 3); edits > 0; edits--) {
        spec[Math.floor(random() * spec.length)] = Math.floor(random() * 256);
      }
      const handles = backends.map((b) => b.routerBuild(spec));
      assert.deepEqual(
        handles.map((h) => h >= 0),
        handles.map(() => handles[0] >= 0),
        `spec ${spec.toString('hex')}`,
      );
      if (handles[0] >= 0) {
        accepted++;
        for (const request of requests) {
          const lists = backends.map((b, k) => candidates(b, handles[k], request));
          for (const list of lists) assert.deepEqual(list, lists[0], `spec ${spec.toString('hex')}`);
        }
      }
      backends.forEach((b, k) => b.routerFree(handles[k]));
    }
    assert.ok(accepted > 100, `only ${accepted} corrupted specs were still valid`);
  });
});

describe('router spec encoder and path params', () => {
  it('splits uris into a static prefix and tokens', () => {
    assert.deepEqual(parseUriPattern('/foo'), { staticPrefix: '/foo', tokens: [], trailing: false });
    assert.deepEqual(parseUriPattern('/foo*'), { staticPrefix: '/foo', tokens: [], trailing: true });
    assert.deepEqual(parseUriPattern('/foo/*'), { staticPrefix: '/foo/', tokens: [], trailing: true });
    assert.deepEqual(parseUriPattern('/u/:id/x'), {
      staticPrefix: '/u/',
      tokens: [
        { type: 1, name: 'id' },
        { type: 0, text: '/x' },
      ],
      trailing: false,
    });
    assert.deepEqual(parseUriPattern('/f/*path'), {
      staticPrefix: '/f/',
      tokens: [{ type: 2, name: 'path' }],
      trailing: false,
    });
    assert.deepEqual(parseUriPattern('/a:b'), { staticPrefix: '/a:b', tokens: [], trailing: false });
  });

  it('parses addresses and CIDRs, rejecting bad ones', () => {
    assert.deepEqual(parseAddressRange('10.0.0.0/8'), {
      bytes: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 0]),
      bits: 104,
    });
    assert.equal(parseAddressRange('::1').bits, 128);
    assert.equal(parseAddressRange('2001:db8::/32').bytes[1], 0x01);
    assert.equal(parseAddressRange('::ffff:1.2.3.4').bytes[15], 4);
    for (const bad of ['10.0.0.256', '10.0.0.0/33', '::1/129', '1:2:3:4:5:6:7:8:9', 'host.example', '1::2::3', '']) {
      assert.throws(() => parseAddressRange(bad), TypeError, bad);
    }
  });

  it('encodes method masks and rejects out-of-range priorities', () => {
    assert.equal(methodMask([]), 0);
    assert.equal(methodMask(['GET', 'post']), (1 << 1) | (1 << 3));
    assert.equal(methodMask(['BREW']), 1);
    assert.throws(() => encodeRouterSpec([route({ priority: 2 ** 31 })]), RangeError);
    assert.throws(() => encodeRouterSpec([route({ priority: 0.5 })]), RangeError);
  });

  it('extracts path parameters', () => {
    assert.deepEqual({ ...extractParams('/user/:name', '/user/bob') }, { name: 'bob' });
    assert.deepEqual({ ...extractParams('/user/:name/posts/:id', '/user/b%20b/posts/7') }, { name: 'b%20b', id: '7' });
    assert.deepEqual({ ...extractParams('/files/*path', '/files/a/b.txt') }, { path: 'a/b.txt' });
    assert.deepEqual({ ...extractParams('/files/*path', '/files/') }, { path: '' });
    assert.deepEqual({ ...extractParams('/static*', '/static/x') }, {});
    assert.equal(extractParams('/user/:name', '/user/'), undefined);
    assert.equal(extractParams('/user/:name', '/user/a/b'), undefined);
    assert.equal(extractParams('/user/:name', '/users/a'), undefined);
  });
});

describe('router spec records', () => {
  it('assembles per-route records into exactly the spec encodeRouterSpec writes', () => {
    const specs: RouteMatchSpec[] = [
      {
        priority: 3,
        methods: ['GET', 'POST'],
        hosts: ['*.Foo.com', 'api.test'],
        uris: ['/a/:id/b', '/x*'],
        remoteAddrs: ['10.0.0.0/8', '::1'],
      },
      { priority: -1, methods: [], hosts: [], uris: ['/exact'], remoteAddrs: [] },
      { priority: 0, methods: ['PURGE'], hosts: ['h'], uris: ['/files/*path'], remoteAddrs: ['2001:db8::/32'] },
    ];
    assert.deepEqual(assembleRouterSpec(specs.map(encodeRouteRecord)), encodeRouterSpec(specs));
    assert.deepEqual(assembleRouterSpec([]), encodeRouterSpec([]));
  });
});
