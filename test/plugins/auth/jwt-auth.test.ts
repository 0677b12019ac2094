import assert from 'node:assert/strict';
import { constants, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';

import jwtAuth, { decodeToken } from '../../../src/plugins/builtin/jwt-auth';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';
import { assertExit, assertPassed } from './helpers';

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="jwt"' };

function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A compact JWS signed with an HMAC secret. */
export function hmacToken(payload: Record<string, unknown>, secret: string | Buffer, alg = 'HS256'): string {
  const input = `${segment({ alg, typ: 'JWT' })}.${segment(payload)}`;
  const signature = createHmac(`sha${alg.slice(2)}`, secret)
    .update(input)
    .digest('base64url');
  return `${input}.${signature}`;
}

/** A compact JWS signed with a private key. */
function keyToken(payload: Record<string, unknown>, key: KeyObject, alg: string): string {
  const input = Buffer.from(`${segment({ alg, typ: 'JWT' })}.${segment(payload)}`);
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  let signature: Buffer;
  if (alg.startsWith('PS')) {
    signature = sign(hash, input, {
      key,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
    });
  } else if (alg.startsWith('ES')) {
    signature = sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
  } else {
    signature = sign(hash, input, key);
  }
  return `${input.toString()}.${signature.toString('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);

const userKey = testConsumer('jack', { 'jwt-auth': { key: 'user-key', secret: 'my-secret-key', algorithm: 'HS256' } });
const anonymous = testConsumer('anonymous', {});
const consumers = [userKey, anonymous];

describe('jwt-auth', () => {
  it('has APISIX priority and type', () => {
    assert.equal(jwtAuth.priority, 2510);
    assert.equal(jwtAuth.type, 'auth');
  });

  it('accepts an HS256 token in the Authorization header, with or without "Bearer "', () => {
    const conf = compilePluginConf(jwtAuth, {});
    const token = hmacToken({ key: 'user-key', exp: now() + 60 }, 'my-secret-key');
    for (const authorization of [token, `Bearer ${token}`, `bearer ${token}`]) {
      const ctx = testContext({ headers: { authorization }, consumers });
      assertPassed(jwtAuth.rewrite!(conf, ctx));
      assert.equal(ctx.consumer?.username, 'jack');
      assert.equal(ctx.upstreamHeader('x-consumer-username'), 'jack');
    }
  });

  it('reads the token from the query and the cookie, and hides each when asked', () => {
    const conf = compilePluginConf(jwtAuth, { hide_credentials: true });
    const token = hmacToken({ key: 'user-key' }, 'my-secret-key');

    const fromQuery = testContext({ uri: `/get?a=1&jwt=${token}`, consumers });
    assertPassed(jwtAuth.rewrite!(conf, fromQuery));
    assert.equal(fromQuery.upstreamUri, '/get?a=1');

    const fromCookie = testContext({ headers: { cookie: `a=1; jwt=${token}; b=2` }, consumers });
    assertPassed(jwtAuth.rewrite!(conf, fromCookie));
    assert.equal(fromCookie.upstreamHeader('cookie'), 'a=1; b=2');

    const fromHeader = testContext({ headers: { authorization: token }, consumers });
    assertPassed(jwtAuth.rewrite!(conf, fromHeader));
    assert.equal(fromHeader.upstreamHeader('authorization'), undefined);
  });

  it('uses the configured header, query, cookie and key claim names', () => {
    const conf = compilePluginConf(jwtAuth, { header: 'X-Token', key_claim_name: 'iss' });
    const token = hmacToken({ iss: 'user-key' }, 'my-secret-key');
    const ctx = testContext({ headers: { 'x-token': token }, consumers });
    assertPassed(jwtAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'jack');
  });

  it('answers APISIX messages for a missing, malformed, keyless and unknown-key token', () => {
    const conf = compilePluginConf(jwtAuth, {});
    const cases: [Record<string, string>, string][] = [
      [{}, 'Missing JWT token in request'],
      [{ authorization: 'Bearer not-a-jwt' }, 'JWT token invalid'],
      [{ authorization: 'a.b.c' }, 'JWT token invalid'],
      [{ authorization: hmacToken({ sub: 'x' }, 'my-secret-key') }, 'missing user key in JWT token'],
      [{ authorization: hmacToken({ key: 'other' }, 'my-secret-key') }, 'Invalid user key in JWT token'],
    ];
    for (const [headers, message] of cases) {
      assertExit(jwtAuth.rewrite!(conf, testContext({ headers, consumers })), 401, { message }, CHALLENGE);
    }
  });

  it('rejects a bad signature, another algorithm than the consumer\'s, and a tampered payload: "failed to verify jwt"', () => {
    const conf = compilePluginConf(jwtAuth, {});
    const good = hmacToken({ key: 'user-key' }, 'my-secret-key');
    const [header, , signature] = good.split('.');
    const tampered = `${header}.${segment({ key: 'user-key', admin: true })}.${signature}`;
    for (const token of [
      hmacToken({ key: 'user-key' }, 'wrong-secret'),
      hmacToken({ key: 'user-key' }, 'my-secret-key', 'HS512'),
      tampered,
      `${good.slice(0, good.lastIndexOf('.'))}.`,
    ]) {
      const ctx = testContext({ headers: { authorization: token }, consumers });
      assertExit(jwtAuth.rewrite!(conf, ctx), 401, { message: 'failed to verify jwt' }, CHALLENGE);
      assert.equal(ctx.consumer, undefined);
    }
  });

  it('checks exp and nbf with the lifetime grace period, and only the claims asked for', () => {
    const strict = compilePluginConf(jwtAuth, {});
    const graceful = testConsumer('grace', {
      'jwt-auth': { key: 'grace-key', secret: 's', algorithm: 'HS256', lifetime_grace_period: 100 },
    });
    const expired = hmacToken({ key: 'user-key', exp: now() - 10 }, 'my-secret-key');
    const early = hmacToken({ key: 'user-key', nbf: now() + 60 }, 'my-secret-key');
    const badExp = hmacToken({ key: 'user-key', exp: 'tomorrow' }, 'my-secret-key');
    for (const token of [expired, early, badExp]) {
      const ctx = testContext({ headers: { authorization: token }, consumers });
      assertExit(jwtAuth.rewrite!(strict, ctx), 401, { message: 'failed to verify jwt' });
    }

    const withinGrace = hmacToken({ key: 'grace-key', exp: now() - 10, nbf: now() + 10 }, 's');
    assertPassed(
      jwtAuth.rewrite!(strict, testContext({ headers: { authorization: withinGrace }, consumers: [graceful] })),
    );

    const nbfOnly = compilePluginConf(jwtAuth, { claims_to_verify: ['nbf'] });
    assertPassed(jwtAuth.rewrite!(nbfOnly, testContext({ headers: { authorization: expired }, consumers })));
    assertExit(jwtAuth.rewrite!(nbfOnly, testContext({ headers: { authorization: early }, consumers })), 401, {
      message: 'failed to verify jwt',
    });
  });

  it('verifies HS384 and HS512, and a base64 secret', () => {
    const conf = compilePluginConf(jwtAuth, {});
    for (const alg of ['HS384', 'HS512']) {
      const consumer = testConsumer('h', { 'jwt-auth': { key: 'h', secret: 'sec', algorithm: alg } });
      const ctx = testContext({
        headers: { authorization: hmacToken({ key: 'h' }, 'sec', alg) },
        consumers: [consumer],
      });
      assertPassed(jwtAuth.rewrite!(conf, ctx));
    }
    const raw = Buffer.from([0, 1, 2, 250, 251, 252]);
    const b64 = testConsumer('b', {
      'jwt-auth': { key: 'b', secret: raw.toString('base64'), algorithm: 'HS256', base64_secret: true },
    });
    const ctx = testContext({ headers: { authorization: hmacToken({ key: 'b' }, raw) }, consumers: [b64] });
    assertPassed(jwtAuth.rewrite!(conf, ctx));
  });

  const asymmetric: [string, () => { publicKey: KeyObject; privateKey: KeyObject }][] = [
    ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['RS384', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['RS512', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['PS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['PS384', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['PS512', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['ES512', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
    ['EdDSA', () => generateKeyPairSync('ed25519')],
  ];
  for (const [alg, generate] of asymmetric) {
    it(`verifies ${alg} with the consumer's public key and rejects another key's signature`, () => {
      const { publicKey, privateKey } = generate();
      const other = generate().privateKey;
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const consumerConf = { key: 'pk', public_key: pem, algorithm: alg };
      assert.deepEqual(checkPluginConf(jwtAuth, consumerConf, 'consumer').ok, true);
      const consumer = testConsumer('pk-user', { 'jwt-auth': consumerConf });
      const conf = compilePluginConf(jwtAuth, {});

      const good = keyToken({ key: 'pk', exp: now() + 60 }, privateKey, alg);
      const ok = testContext({ headers: { authorization: `Bearer ${good}` }, consumers: [consumer] });
      assertPassed(jwtAuth.rewrite!(conf, ok));
      assert.equal(ok.consumer?.username, 'pk-user');

      const forged = keyToken({ key: 'pk' }, other, alg);
      const bad = testContext({ headers: { authorization: forged }, consumers: [consumer] });
      assertExit(jwtAuth.rewrite!(conf, bad), 401, { message: 'failed to verify jwt' });

      // HS256 signed with the public key as the secret must not pass (algorithm confusion).
      const confused = hmacToken({ key: 'pk' }, pem);
      const confusedCtx = testContext({ headers: { authorization: confused }, consumers: [consumer] });
      assertExit(jwtAuth.rewrite!(conf, confusedCtx), 401, { message: 'failed to verify jwt' });
    });
  }

  it('never verifies against an empty secret (a consumer stored without its generated secret)', () => {
    const conf = compilePluginConf(jwtAuth, {});
    const secretless = testConsumer('s', { 'jwt-auth': { key: 'nosecret', algorithm: 'HS256' } });
    const ctx = testContext({
      headers: { authorization: hmacToken({ key: 'nosecret' }, '') },
      consumers: [secretless],
    });
    assertExit(jwtAuth.rewrite!(conf, ctx), 401, { message: 'failed to verify jwt' });
  });

  it('stores the payload for later plugins when store_in_ctx is set', () => {
    const conf = compilePluginConf(jwtAuth, { store_in_ctx: true });
    const ctx = testContext({
      headers: { authorization: hmacToken({ key: 'user-key', n: 1 }, 'my-secret-key') },
      consumers,
    });
    assertPassed(jwtAuth.rewrite!(conf, ctx));
    assert.deepEqual(ctx.scratch('jwt-auth').payload, { key: 'user-key', n: 1 });
  });

  it('falls back to the anonymous consumer', () => {
    const conf = compilePluginConf(jwtAuth, { anonymous_consumer: 'anonymous' });
    const ctx = testContext({ consumers });
    assertPassed(jwtAuth.rewrite!(conf, ctx));
    assert.equal(ctx.consumer?.username, 'anonymous');
  });

  it('decodes only compact three-part tokens with an alg', () => {
    assert.equal(decodeToken('a.b'), undefined);
    assert.equal(decodeToken('a.b.c.d'), undefined);
    assert.equal(decodeToken(`${segment({ typ: 'JWT' })}.${segment({})}.`), undefined);
    assert.ok(decodeToken(`${segment({ alg: 'HS256' })}.${segment({})}.`));
  });

  it('validates consumer configurations as APISIX', () => {
    const hs = checkPluginConf(jwtAuth, { key: 'k' }, 'consumer');
    assert.ok(hs.ok);
    assert.equal(hs.conf.algorithm, 'HS256');
    assert.equal(typeof hs.conf.secret, 'string', 'an HMAC consumer without a secret gets a random one');
    assert.equal(hs.conf.exp, 86400);

    assert.deepEqual(checkPluginConf(jwtAuth, { key: 'k', algorithm: 'RS256' }, 'consumer'), {
      ok: false,
      error: 'missing valid public key',
    });
    assert.deepEqual(checkPluginConf(jwtAuth, { key: 'k', secret: '%%%', base64_secret: true }, 'consumer'), {
      ok: false,
      error: 'base64_secret required but the secret is not in base64 format',
    });
    assert.deepEqual(checkPluginConf(jwtAuth, { key: 'k', algorithm: 'none' }, 'consumer'), {
      ok: false,
      error: 'property "algorithm" validation failed: matches none of the enum values',
    });
    assert.deepEqual(checkPluginConf(jwtAuth, { secret: 's' }, 'consumer'), {
      ok: false,
      error: 'property "key" is required',
    });
    const bad = checkPluginConf(jwtAuth, { key: 'k', algorithm: 'ES256', public_key: 'not a pem' }, 'consumer');
    assert.equal(bad.ok, false);
    assert.deepEqual(checkPluginConf(jwtAuth, { claims_to_verify: ['iat'] }), {
      ok: false,
      error:
        'property "claims_to_verify" validation failed: failed to validate item 1: matches none of the enum values',
    });
  });
});
