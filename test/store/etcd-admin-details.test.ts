// The Admin API over a real etcd, where it has to answer as APISIX does:
// a write etcd does not take, or a read it does not answer, is a 503 with the
// etcd client's error (APISIX's admin/resource.lua), keys are reported under the configured prefix, and a
// data plane's refusal says what is read-only and why.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createEtcdStore, createStandaloneStore, type EtcdStore, type EtcdStoreOptions } from '../../src/store/index';
import type { ConfigStore } from '../../src/store/types';
import { startAdmin, upstream, type Harness } from '../admin/harness';
import { eventually, startEtcd, startTcpProxy, type EtcdServer, type TcpProxy } from '../helpers/etcd';

const TEST_TIMEOUT = { timeout: 30_000 };

let prefixCounter = 0;
function freshPrefix(): string {
  return `/palisade-admin-${process.pid}-${++prefixCounter}`;
}

describe('Admin API over a real etcd', () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  const admins: Harness[] = [];

  async function adminOn(options: EtcdStoreOptions): Promise<{ admin: Harness; store: EtcdStore }> {
    const store = createEtcdStore({ requestTimeoutMs: 1000, maxBackoffMs: 200, ...options });
    await store.open();
    const admin = await startAdmin({ store });
    admins.push(admin);
    return { admin, store };
  }

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.url });
  });
  after(async () => {
    for (const admin of admins.splice(0)) await admin.close();
    raw?.close();
    await etcd?.close();
  });

  describe('etcd unreachable on a write', () => {
    let proxy: TcpProxy;
    let admin: Harness;
    before(async () => {
      proxy = await startTcpProxy(etcd.clientPort);
      ({ admin } = await adminOn({ hosts: [proxy.url], prefix: freshPrefix() }));
      assert.equal((await admin.call('PUT', '/upstreams/u1', upstream)).status, 201);
      assert.equal((await admin.call('PUT', '/routes/r1', { uri: '/r1', upstream_id: 'u1' })).status, 201);
      proxy.cut();
    });
    after(() => proxy.close());

    const writes: Array<[string, string, unknown]> = [
      ['PUT', '/routes/r2', { uri: '/r2', upstream_id: 'u1' }],
      ['PUT with ttl', '/routes/r3?ttl=60', { uri: '/r3', upstream_id: 'u1' }],
      ['POST', '/routes', { uri: '/posted', upstream_id: 'u1' }],
      ['PATCH', '/routes/r1', { desc: 'patched' }],
      ['DELETE', '/routes/r1', undefined],
    ];
    for (const [name, url, body] of writes) {
      it(
        `${name} answers 503 {"error_msg": "etcd request failed: <the etcd client's error>"}, as APISIX`,
        TEST_TIMEOUT,
        async () => {
          const method = name.split(' ')[0];
          const reply = await admin.call(method, url, body);
          assert.equal(reply.status, 503, reply.text);
          assert.deepEqual(Object.keys(reply.json), ['error_msg']);
          assert.match(String(reply.json.error_msg), /^etcd request failed: \S/);
          assert.equal(reply.headers.get('content-type'), 'application/json');
        },
      );
    }

    it(
      'reads are 503 too, as APISIX reads etcd; the store still holds the last loaded configuration',
      TEST_TIMEOUT,
      async () => {
        for (const url of ['/routes/r1', '/routes']) {
          const reply = await admin.call('GET', url);
          assert.equal(reply.status, 503, reply.text);
          assert.match(String(reply.json.error_msg), /^etcd request failed: \S/);
        }
        assert.equal(admin.store.get('routes', 'r1')?.value.uri, '/r1');
      },
    );

    it('writes succeed again once etcd answers', TEST_TIMEOUT, async () => {
      proxy.restore();
      let last = 0;
      await eventually(
        async () => {
          last = (await admin.call('PUT', '/routes/r2', { uri: '/r2', upstream_id: 'u1' })).status;
          return last === 201 || last === 200;
        },
        10_000,
        'a PUT to succeed after etcd is reachable again',
      );
      assert.equal((await admin.call('GET', '/routes/r2')).status, 200);
    });
  });

  it('DELETE, PUT, POST and GET report keys under a custom prefix', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const { admin } = await adminOn({ hosts: [etcd.url], prefix });
    const put = await admin.call('PUT', '/routes/1', { uri: '/one', upstream });
    assert.equal(put.json.key, `${prefix}/routes/1`);
    const posted = await admin.call('POST', '/routes', { uri: '/two', upstream });
    const postedId = String((posted.json.value as Record<string, unknown>).id);
    assert.equal(posted.json.key, `${prefix}/routes/${postedId}`);
    assert.equal((await admin.call('GET', '/routes/1')).json.key, `${prefix}/routes/1`);
    const list = (await admin.call('GET', '/routes')).json.list as Array<{ key: string }>;
    assert.deepEqual(
      list.map((item) => item.key).sort(),
      [`${prefix}/routes/${postedId}`, `${prefix}/routes/1`].sort(),
    );

    const deleted = await admin.call('DELETE', '/routes/1');
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.json, { deleted: '1', key: `${prefix}/routes/1` });
    assert.equal(await raw.get(`${prefix}/routes/1`).string(), null, 'the key is gone from etcd');
    assert.notEqual(await raw.get(`${prefix}/routes/${postedId}`).string(), null);
  });

  it('GET reports etcd create_revision and mod_revision as createdIndex and modifiedIndex', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const { admin } = await adminOn({ hosts: [etcd.url], prefix });
    await admin.call('PUT', '/upstreams/u1', upstream);
    await admin.call('PATCH', '/upstreams/u1', { desc: 'patched' });
    const got = (await admin.call('GET', '/upstreams/u1')).json;
    const range = await raw.get(`${prefix}/upstreams/u1`).exec();
    const kv = range.kvs[0];
    assert.equal(got.createdIndex, Number(kv.create_revision));
    assert.equal(got.modifiedIndex, Number(kv.mod_revision));
    assert.ok((got.modifiedIndex as number) > (got.createdIndex as number));
  });

  it("a data plane's refusal names the data plane role and etcd, not the standalone file", TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const { admin } = await adminOn({ hosts: [etcd.url], prefix, role: 'data_plane' });
    for (const [method, url, body] of [
      ['PUT', '/routes/1', { uri: '/one', upstream }],
      ['POST', '/routes', { uri: '/one', upstream }],
      ['DELETE', '/routes/1', undefined],
    ] as const) {
      const reply = await admin.call(method, url, body);
      assert.equal(reply.status, 400);
      const message = String(reply.json.error_msg);
      assert.match(
        message,
        /^the configuration is read-only: this node is a data plane \(deployment\.role data_plane\)/,
      );
      assert.ok(message.includes(`${prefix} in etcd at ${etcd.url}`), message);
      assert.match(message, /control_plane/);
      assert.doesNotMatch(message, /standalone|YAML/i);
    }
    assert.equal((await admin.call('GET', '/routes')).status, 200);
  });

  it('a read-only watch store (as the agent opens) says it only watches etcd', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const { admin } = await adminOn({ hosts: [etcd.url], prefix, readOnly: true });
    const reply = await admin.call('PUT', '/routes/1', { uri: '/one', upstream });
    assert.equal(reply.status, 400);
    assert.match(String(reply.json.error_msg), /^the configuration is read-only: this etcd store only watches /);
    assert.doesNotMatch(String(reply.json.error_msg), /standalone|data_plane/);
  });
});

describe('Admin API over the standalone store', () => {
  it('a refusal names the standalone file', TEST_TIMEOUT, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'palisade-standalone-admin-'));
    const file = path.join(dir, 'apisix.yaml');
    writeFileSync(file, 'routes: []\n#END\n');
    const store: ConfigStore = createStandaloneStore(file, { pollMs: 1000 });
    await store.open();
    const admin = await startAdmin({ store });
    try {
      const reply = await admin.call('PUT', '/routes/1', { uri: '/one', upstream });
      assert.equal(reply.status, 400);
      assert.equal(
        reply.json.error_msg,
        `the configuration is read-only: it is read from the standalone file ${file}; edit that file instead`,
      );
    } finally {
      await admin.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
