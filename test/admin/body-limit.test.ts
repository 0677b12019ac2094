// The Admin API body limit: 1.5 MiB (1572864 bytes) as APISIX, the same in
// conf/config.yaml, the config defaults and the server, with APISIX's 413
// message whether the size is declared or only seen while reading.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ADMIN_MAX_BODY_BYTES } from '../../src/config/defaults';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../src/config/load';
import { ADMIN_KEY, startAdmin, type Harness } from './harness';

const LIMIT = 1572864;

/** A valid route body padded with JSON whitespace to exactly `size` bytes. */
function routeBodyOfSize(size: number): string {
  const open = '{"uri":"/limit"';
  return open + ' '.repeat(size - open.length - 1) + '}';
}

/** Send a chunked body (no Content-Length) until the server answers; resolves with its status and body. */
function sendChunked(base: string, path: string, total: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base + path);
    const req = request(url, {
      method: 'PUT',
      headers: { 'X-API-KEY': ADMIN_KEY, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      timeout: 5000,
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    // The server closes once it has answered; a write after that may fail, which is expected.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(65536, ' ');
    let sent = 0;
    const pump = (): void => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    req.write('{"uri":"/chunked"');
    pump();
  });
}

describe('Admin API body limit', () => {
  let admin: Harness;
  before(async () => {
    const shipped = loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: {} });
    admin = await startAdmin({ maxBodyBytes: shipped.admin.maxBodyBytes });
  });
  after(() => admin.close());

  it('is 1572864 bytes in conf/config.yaml and in the config defaults', () => {
    assert.equal(DEFAULT_ADMIN_MAX_BODY_BYTES, LIMIT);
    assert.equal(loadConfig({ configPath: DEFAULT_CONFIG_PATH, env: {} }).admin.maxBodyBytes, LIMIT);
  });

  it('accepts a body of exactly the limit', async () => {
    const reply = await admin.call('PUT', '/routes/at-limit', routeBodyOfSize(LIMIT));
    assert.equal(reply.status, 201, reply.text);
  });

  it('answers 413 with APISIX wording for a declared size one byte over', async () => {
    const reply = await admin.call('PUT', '/routes/over', routeBodyOfSize(LIMIT + 1));
    assert.equal(reply.status, 413);
    assert.deepEqual(reply.json, {
      error_msg: `request size ${LIMIT + 1} is greater than the maximum size ${LIMIT} allowed`,
    });
    assert.equal((await admin.call('GET', '/routes/over')).status, 404);
  });

  it('answers 413 for a chunked body that grows past the limit', async () => {
    const reply = await sendChunked(admin.base, '/routes/chunked', 4 * LIMIT);
    assert.equal(reply.status, 413);
    const match = /^request size (\d+) is greater than the maximum size 1572864 allowed$/.exec(
      (JSON.parse(reply.text) as { error_msg: string }).error_msg,
    );
    assert.ok(match, reply.text);
    assert.ok(Number(match[1]) > LIMIT);
    assert.equal((await admin.call('GET', '/routes/chunked')).status, 404);
  });
});
