// $uri against the real thing: a local nginx answers every request with its
// own $uri (`return 200 "$uri"`, merge_slashes on by default), and every
// backend must give the same bytes, or refuse with 400 what nginx refuses.
// Skipped when nginx is not installed (apt-get install nginx-light).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { loadBackend, type BackendName, type NativeBackend } from '../../src/native';
import { OUT_SIZE, Out, normalisedPath } from '../../src/native/layout';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';
import { seededIntegers } from '../helpers/random';

const RANDOM_TARGETS = 2000;
const nginxMissing = spawnSync('nginx', ['-v']).error !== undefined ? 'nginx is not installed' : false;

const backends: NativeBackend[] = [];
for (const name of ['ffi', 'napi', 'js'] as BackendName[]) {
  const file = name === 'ffi' ? sharedLibraryPath : name === 'napi' ? addonPath : undefined;
  if (file === undefined || existsSync(file)) backends.push(loadBackend(name));
}

interface Answer {
  status: number;
  /** $uri as latin1, for a 200. */
  uri: string;
}

function ours(backend: NativeBackend, target: string): Answer {
  const buf = Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
  const out = new Int32Array(OUT_SIZE);
  if (backend.parseRequest(buf, 0, buf.length, -1, Buffer.alloc(4), out) <= 0) return { status: 400, uri: '' };
  const uri = normalisedPath(out) ?? buf.subarray(out[Out.TargetStart], out[Out.PathEnd]);
  return { status: 200, uri: uri.toString('latin1') };
}

function askNginx(socketPath: string, target: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(socketPath, () => {
      socket.end(Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'));
    });
    socket.setTimeout(5000, () => socket.destroy(new Error(`nginx did not answer ${JSON.stringify(target)}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const response = Buffer.concat(chunks);
      const bodyAt = response.indexOf('\r\n\r\n');
      const status = Number(response.toString('latin1', 9, 12));
      resolve({ status, uri: status === 200 ? response.toString('latin1', bodyAt + 4) : '' });
    });
  });
}

async function waitForSocket(socketPath: string, deadline: number): Promise<void> {
  while (!existsSync(socketPath)) {
    if (Date.now() > deadline) throw new Error('nginx did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const pieces = [
  '/',
  '/',
  '//',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2f',
  '%25',
  '%23',
  '%3f',
  '%00',
  '%',
  '%4',
  '%zz',
  '%41',
  '%20',
  '%e9',
  '#',
  '?',
  'a',
  'B',
  '+',
  ';',
  '\u00e9',
];

describe('$uri is the $uri of a real nginx', { skip: nginxMissing }, () => {
  let dir: string;
  let socketPath: string;
  let nginx: ChildProcess;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'palisade-nginx-uri-'));
    socketPath = path.join(dir, 'nginx.sock');
    const conf = [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `error_log ${dir}/error.log;`,
      `pid ${dir}/nginx.pid;`,
      'events { worker_connections 16; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${dir};`),
      `  server { listen unix:${socketPath}; location / { default_type text/plain; return 200 "$uri"; } }`,
      '}',
    ].join('\n');
    writeFileSync(path.join(dir, 'nginx.conf'), conf);
    nginx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    await waitForSocket(socketPath, Date.now() + 5000);
  });

  after(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it(`agrees on the tricky paths and ${RANDOM_TARGETS} random ones`, async () => {
    const targets = ['/%61dmin', '//admin', '/./admin', '/x/../admin', '/..', '/a/b/..', '/a/.', '/admin#x'];
    targets.push('/%2e%2e', '/a%2f%2fb', '/.%2e/', '/%', '/%2541', 'http://h/%61dmin', 'http://h//a/./b?x=/../');
    const random = seededIntegers(0x9e11);
    for (let n = 0; n < RANDOM_TARGETS; n++) {
      let target = '/';
      const count = 1 + random(10);
      for (let i = 0; i < count; i++) target += pieces[random(pieces.length)];
      targets.push(target);
    }
    for (const target of targets) {
      const expected = await askNginx(socketPath, target);
      assert.ok(expected.status === 200 || expected.status === 400, `nginx answered ${expected.status}`);
      for (const backend of backends) {
        assert.deepEqual(ours(backend, target), expected, `${backend.name} ${JSON.stringify(target)}`);
      }
    }
  });
});
