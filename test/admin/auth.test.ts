import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AdminAuth, PUBLISHED_DEFAULT_KEYS } from '../../src/admin/auth';
import { ADMIN_KEY, VIEWER_KEY, startAdmin, upstream, type Harness } from './harness';

describe('Admin API authentication', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin();
  });
  after(() => admin.close());

  it('answers 401 missing apikey without a key', async () => {
    const reply = await admin.call('GET', '/routes', undefined, {});
    assert.equal(reply.status, 401);
    assert.deepEqual(reply.json, { error_msg: 'failed to check token', description: 'missing apikey' });
  });

  it('answers 401 wrong apikey for an unknown key, of any length', async () => {
    for (const key of ['nope', ADMIN_KEY + 'x', ADMIN_KEY.slice(0, -1)]) {
      const reply = await admin.call('GET', '/routes', undefined, { 'X-API-KEY': key });
      assert.equal(reply.status, 401);
      assert.deepEqual(reply.json, { error_msg: 'failed to check token', description: 'wrong apikey' });
    }
  });

  it('accepts the key from the query string and from the x_api_key cookie', async () => {
    const query = await admin.call('GET', `/routes?api_key=${ADMIN_KEY}`, undefined, {});
    assert.equal(query.status, 200);
    const cookie = await admin.call('GET', '/routes', undefined, { Cookie: `other=1; x_api_key=${ADMIN_KEY}` });
    assert.equal(cookie.status, 200);
  });

  it('lets the viewer role GET but not write', async () => {
    const viewer = { 'X-API-KEY': VIEWER_KEY };
    assert.equal((await admin.call('GET', '/routes', undefined, viewer)).status, 200);
    assert.equal((await admin.call('HEAD', '', undefined, viewer)).status, 200);
    const put = await admin.call('PUT', '/routes/1', { uri: '/a', upstream }, viewer);
    assert.equal(put.status, 401);
    assert.deepEqual(put.json, { error_msg: 'failed to check token', description: 'invalid method for role viewer' });
    const del = await admin.call('DELETE', '/routes/1', undefined, viewer);
    assert.equal(del.status, 401);
  });
});

describe('Admin API allow list', () => {
  it('refuses addresses outside allow with 403', async () => {
    const admin = await startAdmin({ allow: ['10.0.0.0/8'] });
    try {
      const reply = await admin.call('GET', '/routes');
      assert.equal(reply.status, 403);
    } finally {
      await admin.close();
    }
  });

  it('allows loopback by default', async () => {
    const admin = await startAdmin({ allow: undefined });
    try {
      assert.equal((await admin.call('GET', '/routes')).status, 200);
    } finally {
      await admin.close();
    }
  });

  it("allows 127.0.0.0/24 by default, APISIX's allow_admin, and refuses the rest of 127.0.0.0/8", async () => {
    const admin = await startAdmin({ allow: undefined });
    try {
      // Linux routes all of 127.0.0.0/8 to loopback, so a client can send from 127.0.0.9 or 127.0.1.1.
      assert.equal(await statusFrom(admin.base, '127.0.0.9'), 200);
      assert.equal(await statusFrom(admin.base, '127.0.1.1'), 403);
    } finally {
      await admin.close();
    }
  });
});

/** GET /routes with the admin key from the local address `from`. */
function statusFrom(base: string, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}/routes`,
      { headers: { 'X-API-KEY': ADMIN_KEY }, localAddress: from, agent: false, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout from ${from}`)));
    req.on('error', reject);
    req.end();
  });
}

describe('APISIX published default keys', () => {
  const auth = new AdminAuth(
    [
      { key: PUBLISHED_DEFAULT_KEYS[0], role: 'admin' },
      { key: PUBLISHED_DEFAULT_KEYS[1], role: 'viewer' },
      { key: 'a-private-key', role: 'admin' },
    ],
    ['0.0.0.0/0', '::/0'],
  );

  it('are accepted from loopback', () => {
    assert.equal(auth.check(PUBLISHED_DEFAULT_KEYS[0], 'PUT', '127.0.0.1'), undefined);
    assert.equal(auth.check(PUBLISHED_DEFAULT_KEYS[0], 'PUT', '::1'), undefined);
    assert.equal(auth.check(PUBLISHED_DEFAULT_KEYS[1], 'GET', '::ffff:127.0.0.1'), undefined);
  });

  it('are never accepted from other addresses, even when configured', () => {
    for (const address of ['10.1.2.3', '192.168.0.9', '2001:db8::1']) {
      const denied = auth.check(PUBLISHED_DEFAULT_KEYS[0], 'GET', address);
      assert.equal(denied?.status, 401);
      assert.deepEqual(denied?.body(), { error_msg: 'failed to check token', description: 'wrong apikey' });
      assert.equal(auth.check(PUBLISHED_DEFAULT_KEYS[1], 'GET', address)?.status, 401);
      assert.equal(auth.check('a-private-key', 'PUT', address), undefined);
    }
  });

  it('are reported for a start-up warning', () => {
    const found = AdminAuth.publishedDefaultsIn([
      { key: PUBLISHED_DEFAULT_KEYS[0], role: 'admin' },
      { key: 'other', role: 'admin' },
    ]);
    assert.equal(found.length, 1);
  });
});
