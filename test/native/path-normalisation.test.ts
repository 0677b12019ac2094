// $uri, the normalised path routes match: a table of tricky paths with the
// answers nginx gives, then random paths built from the pieces that matter,
// checked on every backend against the reference model in uri-model.ts and
// against each other (return value and the whole out[], URI area included).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { loadBackend, type BackendName, type NativeBackend } from '../../src/native';
import { OUT_SIZE, Out, ParseError, URI_CAPACITY, normalisedPath } from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';
import { referenceUri } from './uri-model';
import { seededIntegers } from '../helpers/random';

const RANDOM_CASES = 20000;
const UNWRITTEN = 0x5a5a5a5a;

const available: NativeBackend[] = [];
for (const name of ['ffi', 'napi', 'js'] as BackendName[]) {
  const file = name === 'ffi' ? sharedLibraryPath : name === 'napi' ? addonPath : undefined;
  if (file === undefined || existsSync(file)) available.push(loadBackend(name));
}

function head(target: string): Buffer {
  return Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
}

interface Parsed {
  result: number;
  /** $uri as latin1 (one char per byte), or null when the head was refused. */
  uri: string | null;
  /** The parser wrote a normal form (the path was not taken as it is). */
  normalised: boolean;
}

function parse(backend: NativeBackend, target: string, out = new Int32Array(OUT_SIZE)): Parsed {
  const buf = head(target);
  const result = backend.parseRequest(buf, 0, buf.length, -1, Buffer.from([127, 0, 0, 1]), out);
  if (result <= 0) return { result, uri: null, normalised: false };
  const normal = normalisedPath(out);
  const uri = normal ?? buf.subarray(out[Out.TargetStart], out[Out.PathEnd]);
  return { result, uri: uri.toString('latin1'), normalised: normal !== null };
}

// [target, $uri or the status nginx answers with]
const table: Array<[string, string | 400]> = [
  ['/', '/'],
  ['/admin', '/admin'],
  ['/ADMIN', '/ADMIN'],
  ['/%61dmin', '/admin'],
  ['/%41DMIN', '/ADMIN'],
  ['//admin', '/admin'],
  ['///admin//x//', '/admin/x/'],
  ['/./admin', '/admin'],
  ['/.', '/'],
  ['/%2e', '/'],
  ['/x/../admin', '/admin'],
  ['/x/%2e%2E/admin', '/admin'],
  ['/x%2F..%2Fadmin', '/admin'],
  ['/x%2f%2fadmin', '/x/admin'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/a//..', '/'],
  ['/a/./b/../../c', '/c'],
  ['/a/.b/..c/.../d', '/a/.b/..c/.../d'],
  ['/.well-known/x', '/.well-known/x'],
  ['/..', 400],
  ['/../admin', 400],
  ['/a/../..', 400],
  ['/%2e%2e', 400],
  ['/.%2e/', 400],
  ['/%', 400],
  ['/%4', 400],
  ['/%zz', 400],
  ['/%4g', 400],
  ['/a%00b', 400],
  ['/%25', '/%'],
  ['/%2541', '/%41'],
  ['/.%25', '/.%'],
  ['/a%3Fb', '/a?b'],
  ['/a%23b', '/a#b'],
  ['/admin#frag', '/admin'],
  ['/admin#%zz', '/admin'],
  ['/a/.#x', '/a/'],
  ['/a/b/..#x', '/a/'],
  ['/a+b;c=d', '/a+b;c=d'],
  ['/caf%C3%A9', '/caf\u00c3\u00a9'],
  ['/%61dmin?x=%zz&y=/../', '/admin'],
  ['/admin?x=//', '/admin'],
  ['http://h/%61dmin', '/admin'],
  ['http://h//admin?q', '/admin'],
];

for (const backend of available) {
  describe(`$uri (${backend.name})`, () => {
    it('normalises the tricky paths as nginx does, and refuses what it refuses', () => {
      for (const [target, expected] of table) {
        const parsed = parse(backend, target);
        if (expected === 400) {
          assert.equal(parsed.result, ParseError.BadTarget, target);
        } else {
          assert.ok(parsed.result > 0, `${target}: ${parsed.result}`);
          assert.equal(parsed.uri, expected, target);
        }
      }
    });

    it('takes a plain path as it is, writing nothing to the URI area', () => {
      const out = new Int32Array(OUT_SIZE).fill(UNWRITTEN);
      for (const target of ['/', '/admin', '/a/b.c/d-e_f~g', '/ADMIN?x=%zz/../', '/a.b/c.']) {
        const parsed = parse(backend, target, out);
        assert.ok(parsed.result > 0, target);
        assert.equal(parsed.normalised, false, target);
        assert.equal(out[Out.UriLength], -1, target);
      }
      assert.ok(out.subarray(Out.Uri).every((v) => v === UNWRITTEN));
    });

    it('answers CONNECT and OPTIONS * without a $uri', () => {
      const out = new Int32Array(OUT_SIZE);
      for (const line of ['CONNECT h:443 HTTP/1.1\r\nHost: h:443', 'OPTIONS * HTTP/1.1\r\nHost: h']) {
        const buf = Buffer.from(`${line}\r\n\r\n`, 'latin1');
        assert.equal(backend.parseRequest(buf, 0, buf.length, -1, Buffer.alloc(4), out), buf.length);
        assert.equal(out[Out.UriLength], -1);
      }
    });

    it('refuses a path to normalise longer than the URI area; a plain one of any length is fine', () => {
      const fits = '/' + 'a'.repeat(URI_CAPACITY - 4) + '%41';
      assert.equal(parse(backend, fits).uri, '/' + 'a'.repeat(URI_CAPACITY - 4) + 'A');
      assert.equal(parse(backend, fits + 'b').result, ParseError.UriTooLong);
      assert.equal(parse(backend, '/' + 'a'.repeat(URI_CAPACITY * 2)).normalised, false);
    });

    it('refuses an out[] too short for the URI area rather than writing past it', () => {
      const buf = head('/%61');
      assert.throws(() => backend.parseRequest(buf, 0, buf.length, -1, Buffer.alloc(4), new Int32Array(Out.Uri)));
    });

    it('fails early: a bad path is refused once the request line is complete', () => {
      const partial = Buffer.from('GET /%zz HTTP/1.1\r\nHost: x\r\n', 'latin1');
      const out = new Int32Array(OUT_SIZE);
      assert.equal(backend.parseRequest(partial, 0, partial.length, -1, Buffer.alloc(4), out), ParseError.BadTarget);
    });
  });
}

// The pieces nginx's state machine decides on, and a few plain ones.
const pieces = [
  '/',
  '/',
  '/',
  '//',
  '.',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%25',
  '%23',
  '%3f',
  '%00',
  '%',
  '%4',
  '%zz',
  '%41',
  '#',
  '?',
  'a',
  'B',
  'cd',
  '+',
  ';',
  '\u00e9',
];

describe('$uri on random paths', { skip: available.length < 2 ? 'needs two backends' : false }, () => {
  it(`every backend agrees with the reference model and with each other on ${RANDOM_CASES} paths`, () => {
    const random = seededIntegers(0x7a7b);
    const outs = available.map(() => new Int32Array(OUT_SIZE));
    let normalised = 0;
    let refused = 0;
    for (let n = 0; n < RANDOM_CASES; n++) {
      let target = '/';
      const count = 1 + random(10);
      for (let i = 0; i < count; i++) target += pieces[random(pieces.length)];
      const query = target.indexOf('?');
      const path = Buffer.from(query < 0 ? target : target.slice(0, query), 'latin1');
      const expected = referenceUri(path);
      const results = available.map((backend, i) => {
        outs[i].fill(UNWRITTEN);
        return parse(backend, target, outs[i]);
      });
      for (let i = 0; i < available.length; i++) {
        const context = `${available[i].name} ${JSON.stringify(target)}`;
        if (expected === null) {
          assert.equal(results[i].result, ParseError.BadTarget, context);
        } else {
          assert.equal(results[i].uri, expected.toString('latin1'), context);
        }
        if (i > 0) assert.deepEqual(outs[i], outs[0], context);
      }
      if (expected === null) refused++;
      else if (results[0].normalised) normalised++;
    }
    // The generator must reach all three outcomes often enough to mean something.
    assert.ok(
      refused > RANDOM_CASES / 20 && normalised > RANDOM_CASES / 4,
      `refused ${refused}, normalised ${normalised}`,
    );
  });
});
