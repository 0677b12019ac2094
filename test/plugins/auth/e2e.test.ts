// The auth plugins end to end: a DataPlane on 127.0.0.1 runs routes carrying
// them against an echo upstream, with consumers in the snapshot. Accepted
// requests reach the upstream with the consumer headers; rejected ones get
// APISIX's status, JSON body and challenge header and never reach it.
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, sign } from 'node:crypto';
import * as http from 'node:http';
import { after, before, describe, it } from 'node:test';

import basicAuth from '../../../src/plugins/builtin/basic-auth';
import consumerRestriction from '../../../src/plugins/builtin/consumer-restriction';
import hmacAuth from '../../../src/plugins/builtin/hmac-auth';
import jwtAuth from '../../../src/plugins/builtin/jwt-auth';
import keyAuth from '../../../src/plugins/builtin/key-auth';
import type { PluginModule } from '../../../src/plugins/types';
import type { Consumer, Route } from '../../../src/schema/types';
import { availableBackends } from '../../helpers/backends';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';
import { startPluginDataPlane, type PluginDataPlane } from '../dataplane/support';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown>;
}

/** One request on its own connection, bounded in time. */
function send(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false },
      (response) => {
        const parts: Buffer[] = [];
        response.on('data', (chunk: Buffer) => parts.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(parts).toString();
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // not JSON
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
        });
      },
    );
    request.setTimeout(5000, () => request.destroy(new Error('request timed out')));
    request.on('error', reject);
    request.end(options.body);
  });
}

function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function hs256(payload: Record<string, unknown>, secret: string): string {
  const input = `${segment({ alg: 'HS256', typ: 'JWT' })}.${segment(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

function rs256(payload: Record<string, unknown>): string {
  const input = `${segment({ alg: 'RS256', typ: 'JWT' })}.${segment(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')}`;
}

function hmacHeaders(method: string, path: string, extra: Record<string, string> = {}): Record<string, string> {
  const date = new Date().toUTCString();
  const text = `john-key\n${method} ${path}\ndate: ${date}\n`;
  const signature = createHmac('sha256', 'john-secret').update(text).digest('base64');
  return {
    date,
    authorization: `Signature keyId="john-key",algorithm="hmac-sha256",headers="@request-target date",signature="${signature}"`,
    ...extra,
  };
}

const consumers: Consumer[] = [
  {
    username: 'jack',
    labels: { custom_id: 'jack-id' },
    plugins: {
      'key-auth': { key: 'jack-key' },
      'basic-auth': { username: 'jack', password: 'jack-pass' },
      'jwt-auth': { key: 'jack-jwt', secret: 'jack-secret' },
    },
  },
  { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } },
  {
    username: 'rsa_user',
    plugins: {
      'jwt-auth': {
        key: 'rsa-jwt',
        algorithm: 'RS256',
        public_key: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      },
    },
  },
  { username: 'john', plugins: { 'hmac-auth': { key_id: 'john-key', secret_key: 'john-secret' } } },
  { username: 'guest' },
] as Consumer[];

const modules = [keyAuth, basicAuth, jwtAuth, hmacAuth, consumerRestriction] as unknown as PluginModule<never>[];

for (const backend of availableBackends(['js', 'ffi'])) {
  describe(`auth plugins end to end (${backend.name})`, () => {
    let upstream: TestUpstream;
    let gateway: PluginDataPlane;

    before(async () => {
      upstream = await startUpstream();
      const node = { [`127.0.0.1:${upstream.port}`]: 1 };
      const route = (id: string, uri: string, plugins: Record<string, unknown>): Route =>
        ({ id, uri, plugins, upstream: { type: 'roundrobin', nodes: node } }) as Route;
      gateway = await startPluginDataPlane(backend, modules, {
        consumers,
        routes: [
          route('key', '/key', { 'key-auth': {} }),
          route('key-hidden', '/key-hidden', { 'key-auth': { hide_credentials: true } }),
          route('key-anon', '/key-anon', { 'key-auth': { anonymous_consumer: 'guest' } }),
          route('key-only-jack', '/key-only-jack', {
            'key-auth': {},
            'consumer-restriction': { whitelist: ['jack'] },
          }),
          route('basic', '/basic', { 'basic-auth': {} }),
          route('jwt', '/jwt', { 'jwt-auth': {} }),
          route('hmac', '/hmac', { 'hmac-auth': {} }),
          route('hmac-body', '/hmac-body', { 'hmac-auth': { validate_request_body: true } }),
        ],
      });
    });

    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    async function rejected(reply: Reply, status: number, body: Record<string, unknown>, challenge?: string) {
      assert.equal(reply.status, status, reply.text);
      assert.equal(reply.text, JSON.stringify(body) + '\n');
      // APISIX answers plugin exits with nginx's default type.
      assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
      if (challenge !== undefined) assert.equal(reply.headers['www-authenticate'], challenge);
    }

    function seenHeaders(reply: Reply): Record<string, string> {
      assert.equal(reply.status, 200, reply.text);
      return reply.json.headers as Record<string, string>;
    }

    it('key-auth: missing and invalid keys get 401 with the challenge and never reach the upstream', async () => {
      const before = upstream.requests.length;
      await rejected(
        await send(gateway.port, '/key'),
        401,
        { message: 'Missing API key in request' },
        'apikey realm="key"',
      );
      await rejected(
        await send(gateway.port, '/key', { headers: { apikey: 'wrong' } }),
        401,
        { message: 'Invalid API key in request' },
        'apikey realm="key"',
      );
      assert.equal(upstream.requests.length, before);
    });

    it('key-auth: a valid key reaches the upstream with the consumer headers (spoofed ones replaced)', async () => {
      const headers = seenHeaders(
        await send(gateway.port, '/key', { headers: { apikey: 'jack-key', 'x-consumer-username': 'admin' } }),
      );
      assert.equal(headers['x-consumer-username'], 'jack');
      assert.equal(headers['x-consumer-custom-id'], 'jack-id');
      assert.equal(headers['apikey'], 'jack-key');
      const viaQuery = await send(gateway.port, '/key?apikey=rose-key');
      assert.equal(seenHeaders(viaQuery)['x-consumer-username'], 'rose');
    });

    it('key-auth: hide_credentials removes the header or the query argument', async () => {
      const fromHeader = await send(gateway.port, '/key-hidden?a=1', { headers: { apikey: 'jack-key' } });
      assert.equal(seenHeaders(fromHeader)['apikey'], undefined);
      const fromQuery = await send(gateway.port, '/key-hidden?a=1&apikey=jack-key&b=2');
      assert.equal(seenHeaders(fromQuery)['x-consumer-username'], 'jack');
      assert.equal(fromQuery.json.url, '/key-hidden?a=1&b=2');
    });

    it('key-auth: anonymous_consumer lets unauthenticated requests in as that consumer', async () => {
      const headers = seenHeaders(await send(gateway.port, '/key-anon'));
      assert.equal(headers['x-consumer-username'], 'guest');
      const known = seenHeaders(await send(gateway.port, '/key-anon', { headers: { apikey: 'rose-key' } }));
      assert.equal(known['x-consumer-username'], 'rose');
    });

    it('consumer-restriction: the whitelisted consumer passes, another gets 403', async () => {
      seenHeaders(await send(gateway.port, '/key-only-jack', { headers: { apikey: 'jack-key' } }));
      await rejected(await send(gateway.port, '/key-only-jack', { headers: { apikey: 'rose-key' } }), 403, {
        message: 'The consumer_name is forbidden.',
      });
    });

    it('basic-auth: accepted, wrong password, missing header', async () => {
      const good = 'Basic ' + Buffer.from('jack:jack-pass').toString('base64');
      assert.equal(
        seenHeaders(await send(gateway.port, '/basic', { headers: { authorization: good } }))['x-consumer-username'],
        'jack',
      );
      const bad = 'Basic ' + Buffer.from('jack:nope').toString('base64');
      await rejected(
        await send(gateway.port, '/basic', { headers: { authorization: bad } }),
        401,
        { message: 'Invalid user authorization' },
        'Basic realm="basic"',
      );
      await rejected(await send(gateway.port, '/basic'), 401, { message: 'Missing authorization in request' });
    });

    it('jwt-auth: HS256 and RS256 tokens accepted; expired, forged and missing tokens rejected', async () => {
      const exp = Math.floor(Date.now() / 1000) + 60;
      const hs = await send(gateway.port, '/jwt', {
        headers: { authorization: `Bearer ${hs256({ key: 'jack-jwt', exp }, 'jack-secret')}` },
      });
      assert.equal(seenHeaders(hs)['x-consumer-username'], 'jack');
      const rs = await send(gateway.port, `/jwt?jwt=${rs256({ key: 'rsa-jwt', exp })}`);
      assert.equal(seenHeaders(rs)['x-consumer-username'], 'rsa_user');

      const expired = hs256({ key: 'jack-jwt', exp: exp - 3600 }, 'jack-secret');
      await rejected(
        await send(gateway.port, '/jwt', { headers: { authorization: expired } }),
        401,
        { message: 'failed to verify jwt' },
        'Bearer realm="jwt"',
      );
      const forged = hs256({ key: 'jack-jwt', exp }, 'guessed');
      await rejected(await send(gateway.port, '/jwt', { headers: { cookie: `jwt=${forged}` } }), 401, {
        message: 'failed to verify jwt',
      });
      await rejected(await send(gateway.port, '/jwt'), 401, { message: 'Missing JWT token in request' });
    });

    it('hmac-auth: a signed request passes; a bad signature is rejected', async () => {
      const ok = await send(gateway.port, '/hmac?x=1', { headers: hmacHeaders('GET', '/hmac?x=1') });
      assert.equal(seenHeaders(ok)['x-consumer-username'], 'john');
      const tampered = await send(gateway.port, '/hmac?x=2', { headers: hmacHeaders('GET', '/hmac?x=1') });
      await rejected(tampered, 401, { message: "client request can't be validated" });
    });

    it('hmac-auth: validate_request_body checks the Digest against the body, which still reaches the upstream', async () => {
      const body = '{"name":"world"}';
      const digest = 'SHA-256=' + createHash('sha256').update(body).digest('base64');
      const ok = await send(gateway.port, '/hmac-body', {
        method: 'POST',
        headers: hmacHeaders('POST', '/hmac-body', { digest, 'content-type': 'application/json' }),
        body,
      });
      assert.equal(seenHeaders(ok)['x-consumer-username'], 'john');
      assert.equal(ok.json.body, body);

      const wrong = await send(gateway.port, '/hmac-body', {
        method: 'POST',
        headers: hmacHeaders('POST', '/hmac-body', { digest, 'content-type': 'application/json' }),
        body: '{"name":"mallory"}',
      });
      await rejected(wrong, 401, { message: "client request can't be validated" });
    });
  });
}
