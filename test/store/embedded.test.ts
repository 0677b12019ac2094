import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { PalisadeError } from '../../src/core/errors';
import { createEmbeddedStore } from '../../src/store/index';
import type { ConfigSnapshot, ConfigStore } from '../../src/store/types';
import { startAdmin } from '../admin/harness';

const route = (uri: string) => ({ uri, upstream: { nodes: { '127.0.0.1:80': 1 } } });

describe('embedded store', () => {
  let dir: string;
  const open: ConfigStore[] = [];

  async function openStore(): Promise<ConfigStore> {
    const store = createEmbeddedStore(dir);
    await store.open();
    open.push(store);
    return store;
  }

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'palisade-store-'));
  });
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves every acknowledged write after a reopen', async () => {
    const first = await openStore();
    await first.put('routes', '1', route('/a'));
    await first.put('routes', '2', route('/b'));
    await first.put('routes', '1', route('/a2'));
    await first.put('consumers', 'jack', { username: 'jack' });
    await first.delete('routes', '2');
    const before = first.get('routes', '1');
    await first.close();

    const second = await openStore();
    assert.deepEqual(second.get('routes', '1'), before);
    assert.equal(second.get('routes', '2'), undefined);
    assert.deepEqual(second.get('consumers', 'jack')?.value, { username: 'jack' });
    assert.equal(second.list('routes').length, 1);
  });

  it('keeps the revision strictly increasing across restarts, deletes included', async () => {
    const first = await openStore();
    await first.put('routes', '1', route('/a'));
    const deletedRevision = (await first.put('routes', '2', route('/b'))).modifiedIndex;
    await first.delete('routes', '2');
    const afterDelete = first.snapshot().version;
    assert.ok(afterDelete > deletedRevision);
    await first.close();

    const second = await openStore();
    assert.equal(second.snapshot().version, afterDelete);
    const next = await second.put('routes', '3', route('/c'));
    assert.ok(next.modifiedIndex > afterDelete);
    assert.equal(next.createdIndex, next.modifiedIndex);
  });

  it('Admin API: the indexes a GET reports survive a restart and later writes go above them', async () => {
    const first = createEmbeddedStore(dir);
    await first.open();
    const before = await startAdmin({ store: first });
    let highest: number;
    let kept: Record<string, unknown>;
    try {
      await before.call('PUT', '/routes/kept', route('/kept'));
      await before.call('PATCH', '/routes/kept', { desc: 'patched' });
      kept = (await before.call('GET', '/routes/kept')).json;
      await before.call('PUT', '/routes/gone', route('/gone'));
      const gone = (await before.call('GET', '/routes/gone')).json;
      assert.equal((await before.call('DELETE', '/routes/gone')).status, 200);
      highest = gone.modifiedIndex as number;
      assert.ok(highest > (kept.modifiedIndex as number));
    } finally {
      await before.close();
    }

    const second = createEmbeddedStore(dir);
    await second.open();
    const after = await startAdmin({ store: second });
    try {
      assert.deepEqual((await after.call('GET', '/routes/kept')).json, kept);
      await after.call('PUT', '/routes/new', route('/new'));
      const fresh = (await after.call('GET', '/routes/new')).json;
      // Above the deleted route's index too: the delete's revision is kept though its item is gone.
      assert.ok((fresh.createdIndex as number) > highest + 1, `${String(fresh.createdIndex)} > ${highest + 1}`);
      await after.call('PUT', '/routes/kept', route('/kept-again'));
      const rewritten = (await after.call('GET', '/routes/kept')).json;
      assert.equal(rewritten.createdIndex, kept.createdIndex);
      assert.ok((rewritten.modifiedIndex as number) > (fresh.modifiedIndex as number));
    } finally {
      await after.close();
    }
  });

  it('Admin API: a write the disk refuses answers 503 with the reason and the last view keeps serving', async () => {
    const store = createEmbeddedStore(dir);
    await store.open();
    const admin = await startAdmin({ store });
    const routesDir = path.join(dir, 'routes');
    try {
      assert.equal((await admin.call('PUT', '/routes/kept', route('/kept'))).status, 201);
      // A file where the routes directory was: every route write fails, even for root.
      renameSync(routesDir, routesDir + '.away');
      writeFileSync(routesDir, '');
      for (const [method, url, body] of [
        ['PUT', '/routes/new', route('/new')],
        ['PATCH', '/routes/kept', { desc: 'patched' }],
        ['DELETE', '/routes/kept', undefined],
      ] as const) {
        const reply = await admin.call(method, url, body);
        assert.equal(reply.status, 503, `${method}: ${reply.text}`);
        assert.deepEqual(Object.keys(reply.json), ['error_msg']);
        assert.match(String(reply.json.error_msg), /^embedded store write failed: ENOTDIR/);
      }
      const kept = await admin.call('GET', '/routes/kept');
      assert.equal(kept.status, 200);
      assert.equal((kept.json.value as Record<string, unknown>).desc, undefined);
      assert.equal((await admin.call('GET', '/routes/new')).status, 404);

      rmSync(routesDir);
      renameSync(routesDir + '.away', routesDir);
      assert.equal((await admin.call('PUT', '/routes/new', route('/new'))).status, 201);
      assert.equal((await admin.call('DELETE', '/routes/kept')).status, 200);
    } finally {
      await admin.close();
    }
  });

  it('allocates POST ids that never repeat across restarts', async () => {
    const first = await openStore();
    const a = await first.nextId();
    const b = await first.nextId();
    await first.close();
    const second = await openStore();
    const c = await second.nextId();
    assert.match(a, /^\d{20}$/);
    assert.ok(a < b && b < c);
  });

  it('keeps createdIndex on overwrite and bumps modifiedIndex', async () => {
    const store = await openStore();
    const created = await store.put('upstreams', 'u', { nodes: {} });
    const updated = await store.put('upstreams', 'u', { nodes: {}, desc: 'x' });
    assert.equal(updated.createdIndex, created.createdIndex);
    assert.ok(updated.modifiedIndex > created.modifiedIndex);
    assert.equal(updated.key, '/apisix/upstreams/u');
  });

  it('refuses a compare-and-swap against a stale modifiedIndex with 503', async () => {
    const store = await openStore();
    const first = await store.put('routes', '1', route('/a'));
    await store.put('routes', '1', route('/b'));
    await assert.rejects(store.put('routes', '1', route('/c'), { prevIndex: first.modifiedIndex }), (err) => {
      assert.ok(err instanceof PalisadeError);
      assert.equal(err.status, 503);
      assert.equal(err.message, 'value changed before overwritten');
      return true;
    });
    assert.equal(store.get('routes', '1')?.value.uri, '/b');
    const current = store.get('routes', '1')?.modifiedIndex;
    await store.put('routes', '1', route('/d'), { prevIndex: current });
    assert.equal(store.get('routes', '1')?.value.uri, '/d');
  });

  it('expires TTL items on a timer and notifies listeners', async () => {
    const store = await openStore();
    const seen: ConfigSnapshot[] = [];
    store.onChange((snapshot) => seen.push(snapshot));
    await store.put('routes', 'ttl', route('/ttl'), { ttl: 0.2 });
    await store.put('routes', 'kept', route('/kept'));
    assert.equal(seen.at(-1)?.routes.length, 2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(store.get('routes', 'ttl'), undefined);
    assert.equal(seen.at(-1)?.routes.length, 1);
    assert.equal(seen.at(-1)?.routes[0].uri, '/kept');
  });

  it('drops items whose TTL passed while closed', async () => {
    const first = await openStore();
    await first.put('routes', 'ttl', route('/ttl'), { ttl: 0.1 });
    const revision = first.snapshot().version;
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await openStore();
    assert.equal(second.get('routes', 'ttl'), undefined);
    assert.ok(second.snapshot().version > revision);
    assert.deepEqual(readdirSync(path.join(dir, 'routes')), []);
  });

  it('publishes immutable snapshots with one version per change', async () => {
    const store = await openStore();
    const versions: number[] = [];
    store.onChange((snapshot) => versions.push(snapshot.version));
    await store.put('routes', '1', route('/a'));
    const snapshot = store.snapshot();
    await store.put('routes', '2', route('/b'));
    await store.delete('routes', '1');
    assert.equal(versions.length, 3);
    assert.ok(versions[0] < versions[1] && versions[1] < versions[2]);
    assert.equal(snapshot.routes.length, 1, 'an old snapshot does not change');
    assert.ok(Object.isFrozen(snapshot.routes));
    assert.ok(Object.isFrozen(snapshot.routes[0]));
    assert.throws(() => {
      (snapshot.routes as unknown[]).push({});
    });
    // An unchanged resource keeps its array between snapshots.
    assert.equal(store.snapshot().upstreams, snapshot.upstreams);
  });

  it('ignores and removes stray temp files and skips unreadable item files', async () => {
    const first = await openStore();
    await first.put('routes', '1', route('/a'));
    await first.close();
    writeFileSync(path.join(dir, 'routes', '.tmp-1.json.123.1'), '{"torn');
    writeFileSync(path.join(dir, '.tmp-meta.json.123.2'), '');
    writeFileSync(path.join(dir, 'routes', 'junk.json'), 'not json');
    const second = await openStore();
    assert.equal(second.list('routes').length, 1);
    assert.ok(!readdirSync(path.join(dir, 'routes')).some((name) => name.startsWith('.tmp-')));
    assert.ok(!readdirSync(dir).some((name) => name.startsWith('.tmp-')));
  });

  it('stores ids that are awkward as file names', async () => {
    const first = await openStore();
    for (const id of ['.', '..', 'a.b', 'with space', 'slash/inside']) await first.put('upstreams', id, { nodes: {} });
    await first.close();
    const second = await openStore();
    assert.deepEqual(
      second
        .list('upstreams')
        .map((item) => item.key)
        .sort(),
      [
        '/apisix/upstreams/.',
        '/apisix/upstreams/..',
        '/apisix/upstreams/a.b',
        '/apisix/upstreams/slash/inside',
        '/apisix/upstreams/with space',
      ],
    );
  });

  it('loads 10,000 routes (time printed, not asserted)', async () => {
    const count = 10000;
    mkdirRoutes(dir, count);
    const started = process.hrtime.bigint();
    const store = await openStore();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`# embedded store: opened ${count} routes in ${ms.toFixed(1)} ms`);
    assert.equal(store.list('routes').length, count);
    const snapStarted = process.hrtime.bigint();
    assert.equal(store.snapshot().routes.length, count);
    console.log(
      `# embedded store: first snapshot of ${count} routes in ${(Number(process.hrtime.bigint() - snapStarted) / 1e6).toFixed(1)} ms`,
    );
  });
});

/** Lay down item files as the store writes them, without 10,000 fsyncs. */
function mkdirRoutes(dir: string, count: number): void {
  const routes = path.join(dir, 'routes');
  mkdirSync(routes, { recursive: true });
  for (let i = 1; i <= count; i++) {
    const id = String(i);
    const item = {
      id,
      key: `/apisix/routes/${id}`,
      value: { id, uri: `/r/${i}`, upstream: { nodes: { '127.0.0.1:80': 1 } } },
      createdIndex: i,
      modifiedIndex: i,
    };
    writeFileSync(path.join(routes, `${id}.json`), JSON.stringify(item));
  }
}
