// The Admin API suites (test/admin/*.test.ts) run a second time here, with
// every harness on its own real etcd instead of an embedded store. The harness
// builds its store with createEmbeddedStore(dir); this file swaps that factory
// for one returning an etcd-backed store before it loads the suites, so the
// suites run unchanged and any new suite in test/admin joins automatically.

import { readdirSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
// The default import is node:test's own exports object, so replacing `it` on it reaches the suites.
import nodeTest from 'node:test';
import * as embedded from '../../src/store/embedded';
import { createEmbeddedStore, createEtcdStore, type EtcdStore } from '../../src/store/index';
import type { ConfigSnapshot, ConfigStore, PutOptions, ResourceName, StoredItem } from '../../src/store/types';
import { startEtcd, type EtcdServer } from '../helpers/etcd';

/** An etcd store that starts its own etcd on open and removes it on close. */
class StoreOnOwnEtcd implements ConfigStore {
  readonly readOnly = false;
  #etcd: EtcdServer | undefined;
  #store: EtcdStore | undefined;

  get #open(): EtcdStore {
    if (!this.#store) throw new Error('the test store is not open');
    return this.#store;
  }

  async open(): Promise<void> {
    this.#etcd = await startEtcd();
    this.#store = createEtcdStore({ hosts: [this.#etcd.url] });
    await this.#store.open();
  }

  async close(): Promise<void> {
    await this.#store?.close();
    await this.#etcd?.close();
  }

  get(resource: ResourceName, id: string): StoredItem | undefined {
    return this.#open.get(resource, id);
  }

  list(resource: ResourceName): StoredItem[] {
    return this.#open.list(resource);
  }

  fetch(resource: ResourceName, id: string): Promise<StoredItem | undefined> {
    return this.#open.fetch(resource, id);
  }

  fetchList(resource: ResourceName): Promise<StoredItem[]> {
    return this.#open.fetchList(resource);
  }

  put(resource: ResourceName, id: string, value: Record<string, unknown>, options?: PutOptions): Promise<StoredItem> {
    return this.#open.put(resource, id, value, options);
  }

  delete(resource: ResourceName, id: string): Promise<boolean> {
    return this.#open.delete(resource, id);
  }

  nextId(): Promise<string> {
    return this.#open.nextId();
  }

  snapshot(): ConfigSnapshot {
    return this.#open.snapshot();
  }

  onChange(listener: (snapshot: ConfigSnapshot) => void): () => void {
    return this.#open.onChange(listener);
  }
}

Object.assign(embedded, { createEmbeddedStore: (): ConfigStore => new StoreOnOwnEtcd() });

// These wait 600 ms for a 0.3 s ttl. etcd leases count whole seconds with a
// minimum of about 2 s, so on etcd they are skipped; etcd.test.ts checks lease expiry.
const SUB_SECOND_TTL_TESTS = new Set(['expires an item after ?ttl= seconds', 'accepts ttl on POST and PATCH']);
const suiteIt = nodeTest.it;
const itOnEtcd = (name: string, ...rest: unknown[]): unknown => {
  const register = (SUB_SECOND_TTL_TESTS.has(name) ? suiteIt.skip : suiteIt) as (...args: unknown[]) => unknown;
  return register(name, ...rest);
};
Object.assign(nodeTest, { it: Object.assign(itOnEtcd, suiteIt) });

suiteIt('the Admin API harness gets an etcd-backed store', () => {
  assert.ok(createEmbeddedStore('unused') instanceof StoreOnOwnEtcd);
});

// Loaded only now, after the swaps above; an import would run before them.
const adminTests = path.join(__dirname, '../admin');
for (const file of readdirSync(adminTests).sort()) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (file.endsWith('.test.js')) require(path.join(adminTests, file));
}
