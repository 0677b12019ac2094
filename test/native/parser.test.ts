// One suite for the strict HTTP/1.x parsers, run against every backend (the
// koffi library, the N-API addon and the TypeScript mirror) so all three are
// held to the same behaviour.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { loadBackend, type BackendName, type NativeBackend } from '../../src/native';
import {
  CHUNK_STATE_SIZE,
  Chunk,
  Flag,
  MAX_HEADERS,
  Method,
  OUT_SIZE,
  Out,
  ParseError,
  contentLength,
} from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';

const buildFiles: Record<BackendName, string | undefined> = {
  ffi: sharedLibraryPath,
  napi: addonPath,
  js: undefined,
};

const NO_IP = Buffer.alloc(4);

// Test text is written as latin1 so raw bytes (\x00, \x80...) go through as they are.
function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

interface Parsed {
  r: number;
  out: Int32Array;
  buf: Buffer;
}

function span(p: Parsed, start: number, end: number): string {
  return p.buf.toString('latin1', p.out[start], p.out[end]);
}

function headerAt(p: Parsed, i: number): [string, string] {
  const s = Out.Headers + 4 * i;
  return [p.buf.toString('latin1', p.out[s], p.out[s + 1]), p.buf.toString('latin1', p.out[s + 2], p.out[s + 3])];
}

const simpleHead = 'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n';

for (const name of ['ffi', 'napi', 'js'] as const) {
  const buildFile = buildFiles[name];
  const missing = buildFile !== undefined && !existsSync(buildFile);
  const skip = missing ? `${buildFile} is missing: run \`npm run build:native\`` : false;

  describe(`parser on the ${name} backend`, { skip }, () => {
    const backend: NativeBackend | undefined = missing ? undefined : loadBackend(name);
    const native = (): NativeBackend => {
      assert.ok(backend);
      return backend;
    };

    function request(text: string | Buffer, off = 0, len?: number): Parsed {
      const buf = typeof text === 'string' ? bytes(text) : text;
      const out = new Int32Array(OUT_SIZE);
      const r = native().parseRequest(buf, off, len ?? buf.length - off, -1, NO_IP, out);
      assert.equal(out[Out.Status], r, 'out[Status] mirrors the return value');
      return { r, out, buf };
    }

    function response(text: string | Buffer, reqMethod: number = Method.GET, off = 0): Parsed {
      const buf = typeof text === 'string' ? bytes(text) : text;
      const out = new Int32Array(OUT_SIZE);
      const r = native().parseResponse(buf, off, buf.length - off, reqMethod, out);
      assert.equal(out[Out.Status], r, 'out[Status] mirrors the return value');
      return { r, out, buf };
    }

    function requestCode(text: string): number {
      return request(text).r;
    }

    function requestWithHeaders(headers: string, version = '1.1'): Parsed {
      return request(`POST /upload HTTP/${version}\r\n${headers}\r\n`);
    }

    describe('request heads', () => {
      it('parses a simple GET with its spans, flags and headers', () => {
        const text =
          'GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nAccept:  */* \t\r\nX-Empty:\r\n\r\n';
        const p = request(text);
        assert.equal(p.r, text.length);
        assert.equal(p.out[Out.Method], Method.GET);
        assert.equal(p.out[Out.MethodEnd], 3);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '/index.html?x=1&y=2');
        assert.equal(span(p, Out.TargetStart, Out.PathEnd), '/index.html');
        assert.equal(p.out[Out.Version], 1);
        assert.equal(p.out[Out.Flags], Flag.KeepAlive | Flag.HasHost);
        assert.equal(span(p, Out.HostStart, Out.HostEnd), 'example.com');
        assert.equal(p.out[Out.HeaderCount], 3);
        assert.deepEqual(headerAt(p, 0), ['Host', 'example.com:8080']);
        assert.deepEqual(headerAt(p, 1), ['Accept', '*/*']);
        assert.deepEqual(headerAt(p, 2), ['X-Empty', '']);
        assert.equal(p.out[Out.RouteCount], -1);
        assert.equal(contentLength(p.out), 0);
      });

      it('writes absolute offsets when the head does not start at 0', () => {
        const buf = bytes(`junk${simpleHead}tail`);
        const p = request(buf, 4, simpleHead.length);
        assert.equal(p.r, simpleHead.length);
        assert.equal(p.out[Out.MethodEnd], 7);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '/');
        assert.equal(span(p, Out.HostStart, Out.HostEnd), 'example.com');
        assert.deepEqual(headerAt(p, 0), ['Host', 'example.com']);
      });

      it('maps every well-known method and leaves others as Other', () => {
        const methods: Array<[string, number]> = [
          ['GET', Method.GET],
          ['HEAD', Method.HEAD],
          ['POST', Method.POST],
          ['PUT', Method.PUT],
          ['DELETE', Method.DELETE],
          ['OPTIONS', Method.OPTIONS],
          ['TRACE', Method.TRACE],
          ['PATCH', Method.PATCH],
          ['PURGE', Method.PURGE],
          ['get', Method.Other],
          ['M-SEARCH', Method.Other],
          ['PROPFIND', Method.Other],
          ['GETS', Method.Other],
        ];
        for (const [method, code] of methods) {
          const p = request(`${method} /a HTTP/1.1\r\nHost: h\r\n\r\n`);
          assert.ok(p.r > 0, method);
          assert.equal(p.out[Out.Method], code, method);
          assert.equal(p.out[Out.MethodEnd], method.length, method);
        }
        const connect = request('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
        assert.ok(connect.r > 0);
        assert.equal(connect.out[Out.Method], Method.CONNECT);
      });

      it('applies the keep-alive rules of each version and the Connection tokens', () => {
        const cases: Array<[string, string, number]> = [
          ['1.1', '', Flag.KeepAlive],
          ['1.1', 'Connection: close\r\n', 0],
          ['1.1', 'Connection: CLOSE\r\n', 0],
          ['1.1', 'Connection: keep-alive\r\n', Flag.KeepAlive],
          ['1.0', '', 0],
          ['1.0', 'Connection: keep-alive\r\n', Flag.KeepAlive],
          ['1.0', 'Connection: Keep-Alive\r\n', Flag.KeepAlive],
          ['1.0', 'Connection: keep-alive, close\r\n', 0],
          ['1.0', 'Connection: keep-alive\r\nConnection: close\r\n', 0],
          ['1.1', 'Connection: close, x-trace\r\n', Flag.HopHeaders],
          ['1.1', 'Connection: ,, x-trace ,\r\n', Flag.KeepAlive | Flag.HopHeaders],
          ['1.1', 'Connection: Upgrade\r\nUpgrade: websocket\r\n', Flag.KeepAlive | Flag.Upgrade],
          ['1.1', 'Upgrade: websocket\r\nConnection: keep-alive, upgrade\r\n', Flag.KeepAlive | Flag.Upgrade],
          ['1.1', 'Connection: upgrade\r\n', Flag.KeepAlive],
          ['1.1', 'Upgrade: h2c\r\n', Flag.KeepAlive],
          ['1.1', 'Expect: 100-Continue\r\n', Flag.KeepAlive | Flag.ExpectContinue],
          ['1.1', 'Expect: something-else\r\n', Flag.KeepAlive],
          ['1.0', 'Expect: 100-continue\r\n', 0],
          ['1.0', 'Connection: upgrade, keep-alive\r\nUpgrade: websocket\r\n', Flag.KeepAlive],
        ];
        for (const [version, headers, flags] of cases) {
          const p = request(`GET / HTTP/${version}\r\nHost: h\r\n${headers}\r\n`);
          assert.ok(p.r > 0, headers);
          assert.equal(p.out[Out.Version], version === '1.1' ? 1 : 0);
          // HopLines has its own test below.
          assert.equal(
            p.out[Out.Flags] & ~Flag.HopLines,
            flags | Flag.HasHost,
            `${version} ${JSON.stringify(headers)}`,
          );
        }
        const noHost = request('GET / HTTP/1.0\r\n\r\n');
        assert.ok(noHost.r > 0);
        assert.equal(noHost.out[Out.Flags], 0);
        assert.equal(noHost.out[Out.HostStart], 0);
        assert.equal(noHost.out[Out.HostEnd], 0);
      });

      it('returns the first head length when two requests are pipelined', () => {
        const first = 'GET /one HTTP/1.1\r\nHost: a\r\n\r\n';
        const second = 'POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n';
        const buf = bytes(first + second);
        const p1 = request(buf);
        assert.equal(p1.r, first.length);
        assert.equal(span(p1, Out.TargetStart, Out.TargetEnd), '/one');
        const p2 = request(buf, p1.r);
        assert.equal(p2.r, second.length);
        assert.equal(p2.out[Out.Method], Method.POST);
        assert.equal(span(p2, Out.TargetStart, Out.TargetEnd), '/two');
        assert.equal(span(p2, Out.HostStart, Out.HostEnd), 'b');
      });

      it('returns 0 for every prefix of a head fed byte by byte', () => {
        const text = 'PUT /a/b?c HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 12\r\nX-A: b\r\n\r\n';
        const buf = bytes(text);
        for (let n = 0; n < buf.length; n++) {
          assert.equal(request(buf, 0, n).r, 0, `prefix of ${n} bytes`);
        }
        const p = request(buf);
        assert.equal(p.r, buf.length);
        assert.equal(contentLength(p.out), 12);
        assert.equal(span(p, Out.HostStart, Out.HostEnd), '[::1]');
      });

      it('fails on invalid bytes before the head is complete', () => {
        assert.equal(requestCode('GET / HTTP/1.1\r\nX-A: a\x00'), ParseError.BadHeaderValue);
        assert.equal(requestCode('GET / HTTP/1.1\r\nX A'), ParseError.BadHeaderName);
        assert.equal(requestCode('GET / HTTP/1.1\r\n '), ParseError.ObsFold);
        assert.equal(requestCode('GET / HTTP/2.0'), ParseError.BadVersion);
        assert.equal(requestCode('GET / XTTP'), ParseError.BadRequest);
        assert.equal(requestCode('GET /\x01'), ParseError.BadTarget);
        assert.equal(requestCode('G(T'), ParseError.BadMethod);
        assert.equal(
          requestCode('POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n'),
          ParseError.DuplicateContentLength,
        );
      });
    });

    describe('request line errors', () => {
      const cases: Array<[string, string, number]> = [
        ['leading empty line', '\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['leading bare LF', '\nGET / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['leading space', ' GET / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadMethod],
        ['non-token method', 'G@T / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadMethod],
        ['tab after method', 'GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadMethod],
        ['method alone', 'GET\r\n\r\n', ParseError.BadRequest],
        ['two spaces', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['HTTP/0.9 line', 'GET /\r\n\r\n', ParseError.BadRequest],
        ['space in target', 'GET /a b HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['DEL in target', 'GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['NUL in target', 'GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['relative target', 'GET a/b HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['asterisk for GET', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['authority-form for GET', 'GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['origin-form for CONNECT', 'CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['CONNECT without port', 'CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['CONNECT with a path', 'CONNECT example.com:443/x HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['absolute-form without path', 'GET http://example.com HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['absolute-form with query only', 'GET http://example.com?a HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['absolute-form with userinfo', 'GET http://u@example.com/ HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['absolute-form other scheme', 'GET ftp://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['absolute-form empty host', 'GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n', ParseError.BadTarget],
        ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', ParseError.BadVersion],
        ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: h\r\n\r\n', ParseError.BadVersion],
        ['HTTP/0.9', 'GET / HTTP/0.9\r\nHost: h\r\n\r\n', ParseError.BadVersion],
        ['HTTP/1.10', 'GET / HTTP/1.10\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['lower-case version', 'GET / http/1.1\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['version garbage', 'GET / HTTP/x.1\r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['space after version', 'GET / HTTP/1.1 \r\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['bare LF after request line', 'GET / HTTP/1.1\nHost: h\r\n\r\n', ParseError.BadRequest],
        ['bare CR after request line', 'GET / HTTP/1.1\rHost: h\r\n\r\n', ParseError.BadRequest],
      ];
      for (const [title, text, code] of cases) {
        it(`rejects ${title}`, () => {
          assert.equal(requestCode(text), code);
        });
      }
    });

    describe('request targets', () => {
      it('accepts origin-form with the path ending at ?', () => {
        const p = request('GET /a/b%20c?q=1?2 HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(p.r > 0);
        assert.equal(span(p, Out.TargetStart, Out.PathEnd), '/a/b%20c');
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '/a/b%20c?q=1?2');
      });

      it('accepts absolute-form, pointing the target at the path and the host at the authority', () => {
        const p = request('GET http://api.example.com:8080/v1/items?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n');
        assert.ok(p.r > 0);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '/v1/items?x=1');
        assert.equal(span(p, Out.TargetStart, Out.PathEnd), '/v1/items');
        assert.equal(span(p, Out.HostStart, Out.HostEnd), 'api.example.com');
        assert.equal(p.out[Out.Flags] & Flag.HasHost, Flag.HasHost);
        const https = request('GET HTTPS://[2001:db8::1]/ HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(https.r > 0);
        assert.equal(span(https, Out.HostStart, Out.HostEnd), '[2001:db8::1]');
        assert.equal(requestCode('GET http://api.example.com/ HTTP/1.1\r\n\r\n'), ParseError.MissingHost);
      });

      it('accepts * for OPTIONS only', () => {
        const p = request('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(p.r > 0);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '*');
        assert.equal(span(p, Out.TargetStart, Out.PathEnd), '*');
      });

      it('accepts authority-form for CONNECT', () => {
        const p = request('CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n');
        assert.ok(p.r > 0);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), '[::1]:443');
        assert.equal(span(p, Out.TargetStart, Out.PathEnd), '[::1]:443');
        assert.equal(span(p, Out.HostStart, Out.HostEnd), '[::1]');
      });

      it('accepts obs-text bytes in the target', () => {
        const p = request('GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n');
        assert.ok(p.r > 0);
      });
    });

    describe('request field lines', () => {
      const cases: Array<[string, string, number]> = [
        ['obs-fold', 'X-A: a\r\n  b\r\nHost: h\r\n', ParseError.ObsFold],
        ['tab obs-fold', 'X-A: a\r\n\tb\r\nHost: h\r\n', ParseError.ObsFold],
        ['space before the first header', ' Host: h\r\n', ParseError.ObsFold],
        ['NUL in a value', 'Host: h\r\nX-A: a\x00b\r\n', ParseError.BadHeaderValue],
        ['CTL in a value', 'Host: h\r\nX-A: a\x01b\r\n', ParseError.BadHeaderValue],
        ['DEL in a value', 'Host: h\r\nX-A: a\x7fb\r\n', ParseError.BadHeaderValue],
        ['bare CR in a value', 'Host: h\r\nX-A: a\rb\r\n', ParseError.BadRequest],
        ['bare LF after a value', 'Host: h\r\nX-A: a\nX-B: b\r\n', ParseError.BadRequest],
        ['bare LF ending the head', 'Host: h\r\n\n', ParseError.BadRequest],
        ['space before the colon', 'Host : h\r\n', ParseError.BadHeaderName],
        ['tab before the colon', 'Host\t: h\r\n', ParseError.BadHeaderName],
        ['empty name', ': h\r\nHost: h\r\n', ParseError.BadHeaderName],
        ['line without a colon', 'Host: h\r\nX-A\r\n', ParseError.BadHeaderName],
        ['non-token name byte', 'Host: h\r\nX(A): a\r\n', ParseError.BadHeaderName],
        ['NUL in a name', 'Host: h\r\nX\x00A: a\r\n', ParseError.BadHeaderName],
        ['missing Host on 1.1', 'X-A: a\r\n', ParseError.MissingHost],
        ['duplicate Host', 'Host: a\r\nHost: a\r\n', ParseError.MissingHost],
        ['duplicate Host in other case', 'Host: a\r\nhOST: b\r\n', ParseError.MissingHost],
        ['empty Host', 'Host: \r\n', ParseError.BadRequest],
        ['Host with a path', 'Host: a/b\r\n', ParseError.BadRequest],
        ['Host with userinfo', 'Host: u@a\r\n', ParseError.BadRequest],
        ['Host list', 'Host: a, b\r\n', ParseError.BadRequest],
        ['Host with an empty port', 'Host: a:\r\n', ParseError.BadRequest],
        ['Host with a long port', 'Host: a:123456\r\n', ParseError.BadRequest],
        ['Host with a bad port', 'Host: a:8x\r\n', ParseError.BadRequest],
        ['Host with an unclosed bracket', 'Host: [::1\r\n', ParseError.BadRequest],
        ['Host with a bad IPv6 byte', 'Host: [::g]\r\n', ParseError.BadRequest],
        ['Host with a space inside', 'Host: a b\r\n', ParseError.BadRequest],
      ];
      for (const [title, headers, code] of cases) {
        it(`rejects ${title}`, () => {
          assert.equal(requestWithHeaders(headers).r, code);
        });
      }

      it('finds a bad byte or a tab at every position of a long value and target', () => {
        const value = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ';
        for (let i = 0; i < value.length; i++) {
          const withByte = (b: string) => `${value.slice(0, i)}${b}${value.slice(i + 1)}`;
          assert.equal(requestWithHeaders(`Host: h\r\nX-A: ${withByte('\x00')}\r\n`).r, ParseError.BadHeaderValue);
          assert.equal(requestWithHeaders(`Host: h\r\nX-A: ${withByte('\x7f')}\r\n`).r, ParseError.BadHeaderValue);
          assert.equal(requestWithHeaders(`Host: h\r\nX-A: ${withByte('\x1f')}\r\n`).r, ParseError.BadHeaderValue);
          const tabbed = requestWithHeaders(`Host: h\r\nX-A: ${withByte('\t')}\r\n`);
          assert.ok(tabbed.r > 0, `tab at ${i}`);
          assert.equal(
            headerAt(tabbed, 1)[1].length,
            i === 0 || i === value.length - 1 ? value.length - 1 : value.length,
          );
          assert.ok(requestWithHeaders(`Host: h\r\nX-A: ${withByte('\xff')}\r\n`).r > 0);
          assert.equal(requestCode(`GET /${withByte('\x7f')} HTTP/1.1\r\nHost: h\r\n\r\n`), ParseError.BadTarget);
          assert.equal(requestCode(`GET /${withByte('\x01')} HTTP/1.1\r\nHost: h\r\n\r\n`), ParseError.BadTarget);
        }
      });

      it('accepts valid Host forms and spans the host without the port', () => {
        const hosts: Array<[string, string]> = [
          ['example.com', 'example.com'],
          ['Example.COM:80', 'Example.COM'],
          ['127.0.0.1:9080', '127.0.0.1'],
          ['[::1]', '[::1]'],
          ['[2001:db8::ff]:443', '[2001:db8::ff]'],
          ['my_host-1.local~', 'my_host-1.local~'],
        ];
        for (const [value, host] of hosts) {
          const p = requestWithHeaders(`Host: \t${value} \r\n`);
          assert.ok(p.r > 0, value);
          assert.equal(span(p, Out.HostStart, Out.HostEnd), host);
          assert.equal(p.out[Out.Flags] & Flag.HasHost, Flag.HasHost);
        }
      });

      it('accepts exactly 100 headers and rejects 101', () => {
        let headers = 'Host: h\r\n';
        for (let i = 1; i < MAX_HEADERS; i++) headers += `X-H${i}: v${i}\r\n`;
        const full = requestWithHeaders(headers);
        assert.ok(full.r > 0);
        assert.equal(full.out[Out.HeaderCount], MAX_HEADERS);
        assert.deepEqual(headerAt(full, MAX_HEADERS - 1), [`X-H${MAX_HEADERS - 1}`, `v${MAX_HEADERS - 1}`]);
        assert.equal(requestWithHeaders(`${headers}X-Extra: 1\r\n`).r, ParseError.TooManyHeaders);
      });
    });

    describe('Content-Length and Transfer-Encoding', () => {
      it('reads valid lengths into the two halves', () => {
        const lengths = ['0', '5', '0005', '4294967295', '4294967296', '9007199254740991'];
        for (const value of lengths) {
          const p = requestWithHeaders(`Host: h\r\nContent-Length: ${value}\r\n`);
          assert.ok(p.r > 0, value);
          assert.equal(p.out[Out.Flags] & Flag.ContentLength, Flag.ContentLength);
          assert.equal(contentLength(p.out), Number(value));
        }
      });

      it('accepts identical duplicates and identical lists', () => {
        for (const headers of [
          'Content-Length: 5\r\nContent-Length: 5\r\n',
          'Content-Length: 5, 5\r\n',
          'Content-Length: 5,5\r\ncontent-length: 05\r\n',
        ]) {
          const p = requestWithHeaders(`Host: h\r\n${headers}`);
          assert.ok(p.r > 0, headers);
          assert.equal(contentLength(p.out), 5);
        }
      });

      const cases: Array<[string, string, number]> = [
        ['differing duplicate CL', 'Content-Length: 5\r\nContent-Length: 6\r\n', ParseError.DuplicateContentLength],
        ['differing CL list', 'Content-Length: 5, 6\r\n', ParseError.DuplicateContentLength],
        ['CL with a sign', 'Content-Length: +5\r\n', ParseError.BadContentLength],
        ['negative CL', 'Content-Length: -1\r\n', ParseError.BadContentLength],
        ['CL with an inner space', 'Content-Length: 5 5\r\n', ParseError.BadContentLength],
        ['hex CL', 'Content-Length: 0x5\r\n', ParseError.BadContentLength],
        ['empty CL', 'Content-Length: \r\n', ParseError.BadContentLength],
        ['CL list with an empty element', 'Content-Length: 5,\r\n', ParseError.BadContentLength],
        ['CL of 2^53', 'Content-Length: 9007199254740992\r\n', ParseError.BadContentLength],
        ['huge CL', 'Content-Length: 99999999999999999999999999999\r\n', ParseError.BadContentLength],
        [
          'CL then TE',
          'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
          ParseError.ContentLengthAndTransferEncoding,
        ],
        [
          'TE then CL',
          'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n',
          ParseError.ContentLengthAndTransferEncoding,
        ],
        ['TE gzip, chunked', 'Transfer-Encoding: gzip, chunked\r\n', ParseError.BadTransferEncoding],
        ['TE chunked, chunked', 'Transfer-Encoding: chunked, chunked\r\n', ParseError.BadTransferEncoding],
        ['TE twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', ParseError.BadTransferEncoding],
        ['TE xchunked', 'Transfer-Encoding: xchunked\r\n', ParseError.BadTransferEncoding],
        ['TE chunked;x', 'Transfer-Encoding: chunked;x\r\n', ParseError.BadTransferEncoding],
        ['TE chunked with a trailing comma', 'Transfer-Encoding: chunked,\r\n', ParseError.BadTransferEncoding],
        ['TE identity', 'Transfer-Encoding: identity\r\n', ParseError.BadTransferEncoding],
        ['empty TE', 'Transfer-Encoding: \r\n', ParseError.BadTransferEncoding],
      ];
      for (const [title, headers, code] of cases) {
        it(`rejects ${title}`, () => {
          assert.equal(requestWithHeaders(`Host: h\r\n${headers}`).r, code);
        });
      }

      it('accepts chunked in any case with surrounding whitespace', () => {
        for (const value of ['chunked', 'CHUNKED', ' Chunked\t']) {
          const p = requestWithHeaders(`Host: h\r\nTransfer-Encoding:${value}\r\n`);
          assert.ok(p.r > 0, value);
          assert.equal(p.out[Out.Flags], Flag.KeepAlive | Flag.HasHost | Flag.Chunked);
        }
      });

      it('knows framing names and tokens in any case, and no name that differs in a non-letter', () => {
        const flags = (headers: string): number => {
          const p = requestWithHeaders(`Host: h\r\n${headers}`);
          assert.ok(p.r > 0, `${JSON.stringify(headers)} -> ${p.r}`);
          return p.out[Out.Flags];
        };
        const base = Flag.KeepAlive | Flag.HasHost;
        assert.equal(flags('cOnTeNt-LeNgTh: 5\r\n'), base | Flag.ContentLength);
        assert.equal(flags('TRANSFER-ENCODING: CHUNKED\r\n'), base | Flag.Chunked);
        assert.equal(flags('eXPECT: 100-CONTINUE\r\n'), base | Flag.ExpectContinue);
        assert.equal(flags('CONNECTION: CLOSE\r\n') & Flag.KeepAlive, 0);
        assert.equal(flags('Proxy-CONNECTION: x\r\n') & Flag.HopLines, Flag.HopLines);
        // Same length, a '_' or '~' where the name has '-' or a letter: not the framing header.
        assert.equal(flags('Content_Length: 5\r\n'), base);
        assert.equal(flags('Content-Lengt~: 5\r\n'), base);
        assert.equal(flags('Transfer_Encoding: chunked\r\n'), base);
        assert.equal(flags('Transfer-Encodin^: chunked\r\n'), base);
        assert.equal(flags('Expect: 100_continue\r\n'), base);
        assert.equal(flags('Connection: keep_alive\r\n'), base | Flag.HopHeaders | Flag.HopLines);
        assert.equal(flags('Connection: close\t,\tkeep-alive\r\n') & Flag.KeepAlive, 0);
      });

      it('rejects Transfer-Encoding in an HTTP/1.0 request', () => {
        assert.equal(requestWithHeaders('Transfer-Encoding: chunked\r\n', '1.0').r, ParseError.BadTransferEncoding);
      });
    });

    describe('response heads', () => {
      function framing(status: string, headers: string, reqMethod: number = Method.GET): Parsed {
        const p = response(`HTTP/1.1 ${status}\r\n${headers}\r\n`, reqMethod);
        assert.ok(p.r > 0, `${status} ${JSON.stringify(headers)} -> ${p.r}`);
        return p;
      }

      it('parses the status line, reason and headers', () => {
        const text = 'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nServer: x\r\n\r\nnot found';
        const p = response(text);
        assert.equal(p.r, text.length - 9);
        assert.equal(p.out[Out.Method], 404);
        assert.equal(span(p, Out.TargetStart, Out.TargetEnd), 'Not Found');
        assert.equal(p.out[Out.Version], 1);
        assert.equal(p.out[Out.Flags], Flag.KeepAlive | Flag.ContentLength);
        assert.equal(contentLength(p.out), 9);
        assert.equal(p.out[Out.HeaderCount], 2);
        assert.deepEqual(headerAt(p, 1), ['Server', 'x']);
      });

      it('accepts an empty reason with or without the space', () => {
        const bare = framing('200', 'Content-Length: 0\r\n');
        assert.equal(bare.out[Out.TargetStart], bare.out[Out.TargetEnd]);
        const spaced = framing('200 ', 'Content-Length: 0\r\n');
        assert.equal(spaced.out[Out.TargetStart], spaced.out[Out.TargetEnd]);
      });

      it('flags the lines a proxy drops (HopLines), all but a plain Connection: keep-alive', () => {
        const dropped = [
          'TE: trailers\r\n',
          'Trailer: Expires\r\n',
          'Upgrade: h2c\r\n',
          'Keep-Alive: timeout=5\r\n',
          'Proxy-Connection: keep-alive\r\n',
          'Connection: close\r\n',
          'Connection: keep-alive, x-trace\r\n',
          'connection: Keep-Alive\r\nconnection: upgrade\r\n',
        ];
        for (const line of dropped) {
          const p = framing('200 OK', `Content-Length: 0\r\n${line}`);
          assert.equal(p.out[Out.Flags] & Flag.HopLines, Flag.HopLines, JSON.stringify(line));
        }
        const kept = ['', 'Connection: keep-alive\r\n', 'CONNECTION:  Keep-Alive \r\n', 'Tee: x\r\nTrailers: x\r\n'];
        for (const line of kept) {
          const p = framing('200 OK', `Content-Length: 0\r\n${line}`);
          assert.equal(p.out[Out.Flags] & Flag.HopLines, 0, JSON.stringify(line));
        }
      });

      it('has no body for HEAD, 1xx, 101, 204 and 304', () => {
        assert.equal(
          framing('200 OK', 'Content-Length: 10\r\n', Method.HEAD).out[Out.Flags],
          Flag.KeepAlive | Flag.NoBody,
        );
        assert.equal(framing('100 Continue', '').out[Out.Flags], Flag.KeepAlive | Flag.NoBody);
        const upgrade = framing('101 Switching Protocols', 'Connection: Upgrade\r\nUpgrade: websocket\r\n');
        assert.equal(upgrade.out[Out.Flags], Flag.KeepAlive | Flag.Upgrade | Flag.NoBody | Flag.HopLines);
        assert.equal(framing('204 No Content', '').out[Out.Flags], Flag.KeepAlive | Flag.NoBody);
        assert.equal(
          framing('304 Not Modified', 'Transfer-Encoding: chunked\r\n').out[Out.Flags],
          Flag.KeepAlive | Flag.NoBody,
        );
      });

      it('frames by chunked, Content-Length or connection close', () => {
        assert.equal(framing('200 OK', 'Transfer-Encoding: chunked\r\n').out[Out.Flags], Flag.KeepAlive | Flag.Chunked);
        assert.equal(
          framing('200 OK', 'Transfer-Encoding: gzip, Chunked\r\n').out[Out.Flags],
          Flag.KeepAlive | Flag.Chunked,
        );
        assert.equal(framing('200 OK', 'Transfer-Encoding: chunked, gzip\r\n').out[Out.Flags], Flag.ReadToClose);
        assert.equal(framing('200 OK', 'Transfer-Encoding: gzip\r\n').out[Out.Flags], Flag.ReadToClose);
        const cl = framing('200 OK', 'Content-Length: 4294967297\r\n');
        assert.equal(cl.out[Out.Flags], Flag.KeepAlive | Flag.ContentLength);
        assert.equal(contentLength(cl.out), 4294967297);
        assert.equal(framing('200 OK', '').out[Out.Flags], Flag.ReadToClose);
        assert.equal(
          framing('200 OK', 'Connection: close\r\nContent-Length: 1\r\n').out[Out.Flags],
          Flag.ContentLength | Flag.HopLines,
        );
        const old = response('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n');
        assert.equal(old.out[Out.Version], 0);
        assert.equal(old.out[Out.Flags], Flag.KeepAlive | Flag.ContentLength);
      });

      const errors: Array<[string, string, number]> = [
        [
          'CL with TE',
          'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
          ParseError.ContentLengthAndTransferEncoding,
        ],
        [
          'TE with CL on a 204',
          'HTTP/1.1 204 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n',
          ParseError.ContentLengthAndTransferEncoding,
        ],
        ['TE on HTTP/1.0', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', ParseError.BadTransferEncoding],
        [
          'differing CL',
          'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
          ParseError.DuplicateContentLength,
        ],
        ['bad CL', 'HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n', ParseError.BadContentLength],
        ['status 99', 'HTTP/1.1 099 X\r\n\r\n', ParseError.BadStatus],
        ['status 600', 'HTTP/1.1 600 X\r\n\r\n', ParseError.BadStatus],
        ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', ParseError.BadStatus],
        ['four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', ParseError.BadStatus],
        ['HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n', ParseError.BadStatus],
        ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n', ParseError.BadStatus],
        ['lower-case version', 'http/1.1 200 OK\r\n\r\n', ParseError.BadStatus],
        ['CTL in the reason', 'HTTP/1.1 200 O\x01K\r\n\r\n', ParseError.BadStatus],
        ['bare LF after the status line', 'HTTP/1.1 200 OK\n\r\n', ParseError.BadStatus],
        ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n', ParseError.ObsFold],
        ['NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: \x00\r\n\r\n', ParseError.BadHeaderValue],
        ['space before the colon', 'HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n', ParseError.BadHeaderName],
        ['bare LF in the headers', 'HTTP/1.1 200 OK\r\nX-A: a\n\r\n', ParseError.BadRequest],
      ];
      for (const [title, text, code] of errors) {
        it(`rejects ${title}`, () => {
          assert.equal(response(text).r, code);
        });
      }

      it('returns 0 for every prefix of a response head', () => {
        const buf = bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello');
        const headLength = buf.indexOf('\r\n\r\n') + 4;
        const out = new Int32Array(OUT_SIZE);
        for (let n = 0; n < headLength; n++) {
          assert.equal(native().parseResponse(buf, 0, n, Method.GET, out), 0, `prefix of ${n} bytes`);
        }
        assert.equal(native().parseResponse(buf, 0, buf.length, Method.GET, out), headLength);
      });

      it('ignores Host in responses', () => {
        const p = response('HTTP/1.1 200 OK\r\nHost: a\r\nHost: b c\r\nContent-Length: 0\r\n\r\n');
        assert.ok(p.r > 0);
        assert.equal(p.out[Out.Flags], Flag.KeepAlive | Flag.ContentLength);
      });
    });

    describe('chunked scanner', () => {
      function newState(): Int32Array {
        return new Int32Array(CHUNK_STATE_SIZE);
      }

      /** Scan the whole buffer in one call. */
      function scan(text: string | Buffer): { r: number; state: Int32Array } {
        const buf = typeof text === 'string' ? bytes(text) : text;
        const state = newState();
        const r = native().chunkedScan(buf, 0, buf.length, state);
        return { r, state };
      }

      /** Scan in pieces cut at `cuts`; returns the total consumed or the first error. */
      function scanInPieces(buf: Buffer, cuts: number[]): { r: number; state: Int32Array } {
        const state = newState();
        let consumed = 0;
        let from = 0;
        for (const to of [...cuts, buf.length]) {
          const r = native().chunkedScan(buf, from, to - from, state);
          if (r < 0) return { r, state };
          consumed += r;
          from = to;
          if (state[Chunk.Done] === 1) break;
        }
        return { r: consumed, state };
      }

      const body =
        '5\r\nhello\r\n1a;name=value;q="a b"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\nX-Other:  two \r\n\r\n';

      it('consumes a whole body and stops before pipelined bytes', () => {
        const buf = bytes(`${body}GET / HTTP/1.1\r\n`);
        const { r, state } = scan(buf);
        assert.equal(r, body.length);
        assert.equal(state[Chunk.Done], 1);
        assert.equal(native().chunkedScan(buf, r, buf.length - r, state), 0, 'nothing more once done');
      });

      it('gives the same result split at every byte offset', () => {
        const buf = bytes(`${body}NEXT`);
        for (let cut = 0; cut <= buf.length; cut++) {
          const { r, state } = scanInPieces(buf, [cut]);
          assert.equal(r, body.length, `cut at ${cut}`);
          assert.equal(state[Chunk.Done], 1, `cut at ${cut}`);
        }
      });

      it('gives the same result fed one byte at a time', () => {
        const buf = bytes(`${body}NEXT`);
        const cuts = Array.from({ length: buf.length - 1 }, (_, i) => i + 1);
        const { r, state } = scanInPieces(buf, cuts);
        assert.equal(r, body.length);
        assert.equal(state[Chunk.Done], 1);
      });

      it('keeps the state between calls and is not done until the final CRLF', () => {
        const buf = bytes('a\r\n0123456789\r\n0\r\n\r\n');
        const state = newState();
        assert.equal(native().chunkedScan(buf, 0, 8, state), 8);
        assert.equal(state[Chunk.Done], 0);
        assert.equal(native().chunkedScan(buf, 8, buf.length - 9, state), buf.length - 9);
        assert.equal(state[Chunk.Done], 0);
        assert.equal(native().chunkedScan(buf, buf.length - 1, 1, state), 1);
        assert.equal(state[Chunk.Done], 1);
      });

      it('accepts large sizes within 2^53 - 1 and upper-case hex', () => {
        const buf = bytes('1FFFFFFFFFFFFF\r\nabc');
        const { r, state } = scan(buf);
        assert.equal(r, buf.length);
        assert.equal(state[Chunk.Done], 0);
        const left = (state[Chunk.RemainHi] >>> 0) * 4294967296 + (state[Chunk.RemainLo] >>> 0);
        assert.equal(left, Number.MAX_SAFE_INTEGER - 3);
        assert.equal(scan('000000000000000A\r\n').r, 18, '16 digits with leading zeros');
      });

      const errors: Array<[string, string, number]> = [
        ['a non-hex size', 'g\r\n', ParseError.BadChunk],
        ['an empty size', '\r\n', ParseError.BadChunk],
        ['a negative size', '-1\r\n', ParseError.BadChunk],
        ['a size with a sign', '+1\r\nx\r\n', ParseError.BadChunk],
        ['a 0x size', '0x5\r\n', ParseError.BadChunk],
        ['a space after the size', '5 \r\nhello\r\n', ParseError.BadChunk],
        ['a space before the size', ' 5\r\nhello\r\n', ParseError.BadChunk],
        ['17 hex digits', '00000000000000001\r\n', ParseError.ChunkTooBig],
        ['a size of 2^53', '20000000000000\r\n', ParseError.ChunkTooBig],
        ['a bare LF after the size', '5\nhello\r\n', ParseError.BadChunk],
        ['a bare CR after the size', '5\rhello\r\n', ParseError.BadChunk],
        ['a CTL in an extension', '5;a\x01\r\nhello\r\n', ParseError.BadChunk],
        ['a bare LF in an extension', '5;a\nhello\r\n', ParseError.BadChunk],
        ['data longer than its size', '5\r\nhello!\r\n0\r\n\r\n', ParseError.BadChunk],
        ['a missing CRLF after the data', '5\r\nhello0\r\n\r\n', ParseError.BadChunk],
        ['a bare LF after the data', '5\r\nhello\n0\r\n\r\n', ParseError.BadChunk],
        ['a bare LF ending the message', '0\r\n\n', ParseError.BadChunk],
        ['a bare LF after a trailer', '0\r\nX-A: b\n\r\n', ParseError.BadChunk],
        ['an obs-folded trailer', '0\r\nX-A: b\r\n c\r\n\r\n', ParseError.BadChunk],
        ['a trailer without a name', '0\r\n: b\r\n\r\n', ParseError.BadChunk],
        ['a space before a trailer colon', '0\r\nX-A : b\r\n\r\n', ParseError.BadChunk],
        ['a NUL in a trailer value', '0\r\nX-A: \x00\r\n\r\n', ParseError.BadChunk],
      ];
      for (const [title, text, code] of errors) {
        it(`rejects ${title}`, () => {
          assert.equal(scan(text).r, code);
        });
      }

      it('bounds the size line to 4096 bytes', () => {
        const fits = `1;${'e'.repeat(4096 - 2)}\r\nx\r\n0\r\n\r\n`;
        assert.equal(scan(fits).r, fits.length);
        const tooLong = `1;${'e'.repeat(4096 - 1)}\r\nx\r\n0\r\n\r\n`;
        assert.equal(scan(tooLong).r, ParseError.BadChunk);
      });

      it('bounds the trailers to 16 KiB', () => {
        const line = `X-T: ${'v'.repeat(1000)}\r\n`;
        const fits = `0\r\n${line.repeat(15)}\r\n`;
        assert.equal(scan(fits).r, fits.length);
        const tooLong = `0\r\n${line.repeat(17)}\r\n`;
        assert.equal(scan(tooLong).r, ParseError.BadChunk);
      });

      it('keeps failing after an error', () => {
        const state = newState();
        const bad = bytes('zz');
        assert.equal(native().chunkedScan(bad, 0, 2, state), ParseError.BadChunk);
        const good = bytes('0\r\n\r\n');
        assert.equal(native().chunkedScan(good, 0, good.length, state), ParseError.BadChunk);
      });

      it('consumes nothing from an empty input', () => {
        const { r, state } = scan('');
        assert.equal(r, 0);
        assert.equal(state[Chunk.Done], 0);
      });
    });
  });
}
