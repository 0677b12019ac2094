// Differential test: mutate valid requests, responses and chunked bodies with
// a seeded PRNG and check that the ffi, napi and js backends agree on every
// return value, the whole out[] and the chunked scanner state. This is what
// keeps the TypeScript mirror honest against native/parser.c.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { loadBackend, type BackendName, type NativeBackend } from '../../src/native';
import { CHUNK_STATE_SIZE, Method, OUT_SIZE } from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';
import { seededIntegers } from '../helpers/random';

const SEED = 0x5eed1234;
const REQUEST_CASES = 20000;
const RESPONSE_CASES = 10000;
const CHUNKED_CASES = 10000;
// Slots no backend wrote keep this value, so "not written" is compared too.
const UNWRITTEN = 0x5a5a5a5a;

const requestSeeds = [
  'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n',
  'GET /api/v1/items?limit=10&offset=20 HTTP/1.1\r\nHost: api.example.com:8080\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n',
  'POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello',
  'PUT /x HTTP/1.1\r\nHost: [::1]:9080\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, x-trace\r\nUpgrade: websocket\r\nX-Trace: 1\r\n\r\n',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
  'GET http://example.com:80/path?q HTTP/1.1\r\nHost: example.com\r\n\r\n',
  'DELETE /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\n',
  'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n',
  // paths that need normalising ($uri): escapes, dot segments, merged slashes, a fragment
  'GET /a/%2e%2E/b%2Fc//d/./e%41?x=%zz HTTP/1.1\r\nHost: h\r\n\r\n',
  'GET //x/../%61dmin/.#frag HTTP/1.1\r\nHost: h\r\n\r\n',
];

const responseSeeds = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive\r\n\r\n',
  'HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 304\r\nETag: "x"\r\n\r\n',
  'HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n',
];

const chunkedSeeds = [
  '5\r\nhello\r\n0\r\n\r\n',
  '1a;name=value;q="a b"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\nNEXT',
  'A\r\n0123456789\r\n3\r\nabc\r\n0;last\r\n\r\n',
  '0\r\nTrailer-A: a\r\nTrailer-B:  b \r\n\r\n',
];

// Bytes that sit on the parser's decision points.
const interestingBytes = [
  0x0d, 0x0a, 0x00, 0x20, 0x3a, 0x2c, 0x09, 0x3b, 0x7f, 0x80, 0x30, 0x2f, 0x3f, 0x5b, 0x25, 0x2e, 0x23,
];
const interestingLines = [
  'Transfer-Encoding: chunked\r\n',
  'Content-Length: 5\r\n',
  'Content-Length: 6\r\n',
  'Host: other\r\n',
  'Connection: close\r\n',
  ' folded\r\n',
  'Upgrade: h2c\r\n',
];

function mutate(seed: Buffer, random: (limit: number) => number): Buffer {
  let bytes = Array.from(seed);
  const rounds = 1 + random(4);
  for (let round = 0; round < rounds; round++) {
    const at = random(bytes.length + 1);
    switch (random(8)) {
      case 0: // replace a byte with a random one
        if (at < bytes.length) bytes[at] = random(256);
        break;
      case 1: // flip one bit
        if (at < bytes.length) bytes[at] ^= 1 << random(8);
        break;
      case 2: // insert a byte the parser decides on
        bytes.splice(at, 0, interestingBytes[random(interestingBytes.length)]);
        break;
      case 3: // delete a byte
        bytes.splice(at, 1);
        break;
      case 4: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 5: {
        // duplicate a slice
        const from = random(bytes.length + 1);
        const length = random(16);
        bytes.splice(at, 0, ...bytes.slice(from, from + length));
        break;
      }
      case 6: {
        // insert a framing header at the start of a line
        const lineStart = bytes.indexOf(0x0a, at);
        const line = interestingLines[random(interestingLines.length)];
        if (lineStart >= 0) bytes.splice(lineStart + 1, 0, ...Buffer.from(line, 'latin1'));
        break;
      }
      default: // replace a byte with an interesting one
        if (at < bytes.length) bytes[at] = interestingBytes[random(interestingBytes.length)];
        break;
    }
  }
  return Buffer.from(bytes);
}

/** Place the case at a random offset inside a larger buffer so absolute offsets are exercised. */
function embed(input: Buffer, random: (limit: number) => number): { buf: Buffer; off: number } {
  const off = random(5);
  const buf = Buffer.alloc(off + input.length + random(3), 0x41);
  input.copy(buf, off);
  return { buf, off };
}

function describeCase(kind: string, input: Buffer, extra: string): string {
  return `${kind} ${JSON.stringify(input.toString('latin1'))} ${extra}`;
}

const available: NativeBackend[] = [];
const missing: string[] = [];
for (const name of ['ffi', 'napi', 'js'] as BackendName[]) {
  const file = name === 'ffi' ? sharedLibraryPath : name === 'napi' ? addonPath : undefined;
  if (file !== undefined && !existsSync(file)) {
    missing.push(`${name} (${file} is missing: run \`npm run build:native\`)`);
    continue;
  }
  available.push(loadBackend(name));
}
const skip = available.length < 2 ? `needs two backends; missing ${missing.join(', ')}` : false;

describe('parser backends agree on mutated input', { skip }, () => {
  it(`agrees on ${REQUEST_CASES} mutated request heads`, () => {
    const random = seededIntegers(SEED);
    const ip = Buffer.from([127, 0, 0, 1]);
    const outs = available.map(() => new Int32Array(OUT_SIZE));
    for (let n = 0; n < REQUEST_CASES; n++) {
      const input = mutate(Buffer.from(requestSeeds[random(requestSeeds.length)], 'latin1'), random);
      const { buf, off } = embed(input, random);
      const len = random(8) === 0 ? random(input.length + 1) : input.length;
      const results = available.map((backend, i) => {
        outs[i].fill(UNWRITTEN);
        return backend.parseRequest(buf, off, len, -1, ip, outs[i]);
      });
      for (let i = 1; i < available.length; i++) {
        const context = describeCase('request', input, `off=${off} len=${len} ${available[i].name}`);
        assert.equal(results[i], results[0], context);
        assert.deepEqual(outs[i], outs[0], context);
      }
    }
  });

  it(`agrees on ${RESPONSE_CASES} mutated response heads`, () => {
    const random = seededIntegers(SEED + 1);
    const methods = [Method.GET, Method.HEAD, Method.POST, Method.Other];
    const outs = available.map(() => new Int32Array(OUT_SIZE));
    for (let n = 0; n < RESPONSE_CASES; n++) {
      const input = mutate(Buffer.from(responseSeeds[random(responseSeeds.length)], 'latin1'), random);
      const { buf, off } = embed(input, random);
      const reqMethod = methods[random(methods.length)];
      const results = available.map((backend, i) => {
        outs[i].fill(UNWRITTEN);
        return backend.parseResponse(buf, off, input.length, reqMethod, outs[i]);
      });
      for (let i = 1; i < available.length; i++) {
        const context = describeCase('response', input, `off=${off} method=${reqMethod} ${available[i].name}`);
        assert.equal(results[i], results[0], context);
        assert.deepEqual(outs[i], outs[0], context);
      }
    }
  });

  it(`agrees on ${CHUNKED_CASES} mutated chunked bodies scanned in pieces`, () => {
    const random = seededIntegers(SEED + 2);
    const states = available.map(() => new Int32Array(CHUNK_STATE_SIZE));
    for (let n = 0; n < CHUNKED_CASES; n++) {
      const input = mutate(Buffer.from(chunkedSeeds[random(chunkedSeeds.length)], 'latin1'), random);
      const { buf, off } = embed(input, random);
      const cuts = [random(input.length + 1), random(input.length + 1)].sort((a, b) => a - b);
      for (const state of states) state.fill(0);
      let from = 0;
      for (const to of [...cuts, input.length]) {
        const results = available.map((backend, i) => backend.chunkedScan(buf, off + from, to - from, states[i]));
        for (let i = 1; i < available.length; i++) {
          const context = describeCase('chunked', input, `piece=${from}..${to} ${available[i].name}`);
          assert.equal(results[i], results[0], context);
          assert.deepEqual(states[i], states[0], context);
        }
        if (results[0] < 0) break;
        from = to;
      }
    }
  });
});
