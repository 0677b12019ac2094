// The embedded store: the default configuration centre, durable on local disk.
//
// Layout (one file per item, so opening 10,000 routes is one directory read and
// 10,000 small JSON parses, and a write touches one small file):
//
//   <dataDir>/meta.json                  {"revision": N}
//   <dataDir>/<resource>/<id>.json       {"id","key","value","createdIndex","modifiedIndex","expiresAt"?}
//
// Every write goes to a temp file (`.tmp-*`), is fsynced, renamed over the
// target, and the directory is fsynced before the promise resolves, so after a
// crash each file holds either its old or its new content. Temp files left by a
// crash are removed on open.
//
// The revision counter (createdIndex/modifiedIndex, POST ids) never goes back:
// on open it is the largest of meta.json's revision and every item's
// modifiedIndex. A put records its revision in the item file itself; deletes
// and id allocations, which leave no item behind, record it in meta.json first.
//
// Writes are serialised through one promise chain; reads are served from memory.
// A write the disk refuses fails with 503 and the reason; the served view stays as it was.

import { mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { PAL_ERR_ADMIN_CONFLICT, PAL_ERR_ADMIN_STORE_UNAVAILABLE, PAL_ERR_CONFIG, PalisadeError } from '../core/errors';
import { logger } from '../core/log';
import { MemoryBackedStore, itemKey } from './memory';
import { RESOURCES, type ConfigStore, type PutOptions, type ResourceName, type StoredItem } from './types';

const log = logger('store.embedded');

const TEMP_PREFIX = '.tmp-';
const META_FILE = 'meta.json';
/** setTimeout's upper bound; longer TTLs re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface ItemFile extends StoredItem {
  id: string;
}

function fileNameFor(id: string): string {
  // Ids are `[a-zA-Z0-9-_.]` or usernames; encoding keeps anything else (and `/`) out of the path.
  return encodeURIComponent(id) + '.json';
}

let tempCounter = 0;

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Write `data` to `dir/name` atomically and durably (temp file, fsync, rename, fsync dir). */
async function writeDurable(dir: string, name: string, data: string): Promise<void> {
  const temp = path.join(dir, `${TEMP_PREFIX}${name}.${process.pid}.${++tempCounter}`);
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path.join(dir, name));
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

function readItemFile(file: string): ItemFile | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    log.warn('skipping unreadable item file', { file, error: (err as Error).message });
    return undefined;
  }
  const item = parsed as Partial<ItemFile> | null;
  if (
    !item ||
    typeof item.id !== 'string' ||
    typeof item.key !== 'string' ||
    typeof item.value !== 'object' ||
    item.value === null ||
    typeof item.createdIndex !== 'number' ||
    typeof item.modifiedIndex !== 'number'
  ) {
    log.warn('skipping malformed item file', { file });
    return undefined;
  }
  return item as ItemFile;
}

export class EmbeddedStore extends MemoryBackedStore implements ConfigStore {
  readonly readOnly = false;
  readonly #dataDir: string;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #queue: Promise<unknown> = Promise.resolve();
  #opened = false;
  #closed = false;

  constructor(dataDir: string) {
    super();
    this.#dataDir = path.resolve(dataDir);
  }

  async open(): Promise<void> {
    if (this.#opened) throw PAL_ERR_CONFIG('the embedded store is already open');
    mkdirSync(this.#dataDir, { recursive: true });
    this.#removeTempFiles(this.#dataDir);
    let revision = this.#readMetaRevision();
    const now = Date.now();
    const expired: Array<[ResourceName, string]> = [];
    for (const resource of RESOURCES) {
      const dir = path.join(this.#dataDir, resource);
      mkdirSync(dir, { recursive: true });
      for (const name of readdirSync(dir)) {
        if (name.startsWith(TEMP_PREFIX)) {
          this.#removeStray(path.join(dir, name));
          continue;
        }
        if (!name.endsWith('.json')) continue;
        const file = readItemFile(path.join(dir, name));
        if (!file) continue;
        revision = Math.max(revision, file.modifiedIndex);
        if (file.expiresAt !== undefined && file.expiresAt <= now) {
          expired.push([resource, file.id]);
          continue;
        }
        const { id, ...item } = file;
        this.state.set(resource, id, item);
      }
    }
    this.state.revision = revision;
    this.#opened = true;
    if (expired.length > 0) {
      // Removing an item leaves no file to carry its revision, so record it first.
      this.state.revision++;
      await writeDurable(this.#dataDir, META_FILE, JSON.stringify({ revision: this.state.revision }));
      for (const [resource, id] of expired) {
        await unlink(path.join(this.#dataDir, resource, fileNameFor(id))).catch(() => undefined);
      }
      for (const resource of new Set(expired.map(([resource]) => resource))) {
        await syncDirectory(path.join(this.#dataDir, resource));
      }
    }
    for (const resource of RESOURCES) {
      for (const [id, item] of this.state.items[resource]) this.#scheduleExpiry(resource, id, item);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue.catch(() => undefined);
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  put(
    resource: ResourceName,
    id: string,
    value: Record<string, unknown>,
    options: PutOptions = {},
  ): Promise<StoredItem> {
    return this.#serialise(async () => {
      const existing = this.state.get(resource, id);
      if (options.prevIndex !== undefined && existing?.modifiedIndex !== options.prevIndex) {
        throw PAL_ERR_ADMIN_CONFLICT('value changed before overwritten');
      }
      const revision = this.state.revision + 1;
      const item: StoredItem = {
        key: itemKey(resource, id),
        value: structuredClone(value),
        createdIndex: existing?.createdIndex ?? revision,
        modifiedIndex: revision,
      };
      if (options.ttl !== undefined) item.expiresAt = Date.now() + options.ttl * 1000;
      const file: ItemFile = { id, ...item };
      await writeDurable(path.join(this.#dataDir, resource), fileNameFor(id), JSON.stringify(file));
      this.state.revision = revision;
      this.state.set(resource, id, item);
      this.#scheduleExpiry(resource, id, item);
      this.state.notify();
      return this.state.get(resource, id) as StoredItem;
    });
  }

  delete(resource: ResourceName, id: string): Promise<boolean> {
    return this.#serialise(() => this.#deleteNow(resource, id));
  }

  nextId(): Promise<string> {
    return this.#serialise(async () => {
      const revision = this.state.revision + 1;
      await writeDurable(this.#dataDir, META_FILE, JSON.stringify({ revision }));
      this.state.revision = revision;
      // APISIX ids from /gen_id are the etcd revision, zero-padded to 20 digits.
      return String(revision).padStart(20, '0');
    });
  }

  async #deleteNow(resource: ResourceName, id: string, onlyIfModifiedIndex?: number): Promise<boolean> {
    const existing = this.state.get(resource, id);
    if (!existing) return false;
    if (onlyIfModifiedIndex !== undefined && existing.modifiedIndex !== onlyIfModifiedIndex) return false;
    const revision = this.state.revision + 1;
    await writeDurable(this.#dataDir, META_FILE, JSON.stringify({ revision }));
    const dir = path.join(this.#dataDir, resource);
    await unlink(path.join(dir, fileNameFor(id))).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await syncDirectory(dir);
    this.state.revision = revision;
    this.state.remove(resource, id);
    this.#clearExpiry(resource, id);
    this.state.notify();
    return true;
  }

  #serialise<T>(write: () => Promise<T>): Promise<T> {
    if (!this.#opened) return Promise.reject(PAL_ERR_CONFIG('the embedded store is not open'));
    if (this.#closed) return Promise.reject(PAL_ERR_CONFIG('the embedded store is closed'));
    const result = this.#queue.then(write).catch((err: unknown) => {
      if (err instanceof PalisadeError) throw err;
      // The disk refused the write (full, read-only, ...): 503 with the reason, as APISIX answers a failed etcd write.
      const reason = err instanceof Error ? err.message : String(err);
      log.error('write to the data dir failed', { dataDir: this.#dataDir, error: reason });
      throw PAL_ERR_ADMIN_STORE_UNAVAILABLE(`embedded store write failed: ${reason}`);
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #scheduleExpiry(resource: ResourceName, id: string, item: StoredItem): void {
    this.#clearExpiry(resource, id);
    if (item.expiresAt === undefined) return;
    const key = item.key;
    const delay = Math.min(Math.max(item.expiresAt - Date.now(), 0), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      if (this.#closed) return;
      if (item.expiresAt !== undefined && item.expiresAt > Date.now()) {
        this.#scheduleExpiry(resource, id, item); // a TTL longer than one timer allows
        return;
      }
      this.#serialise(() => this.#deleteNow(resource, id, item.modifiedIndex)).catch((err: Error) => {
        log.error('failed to remove an expired item', { key, error: err.message });
      });
    }, delay);
    timer.unref();
    this.#timers.set(key, timer);
  }

  #clearExpiry(resource: ResourceName, id: string): void {
    const key = itemKey(resource, id);
    const timer = this.#timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.#timers.delete(key);
    }
  }

  #readMetaRevision(): number {
    try {
      const meta = JSON.parse(readFileSync(path.join(this.#dataDir, META_FILE), 'utf8')) as { revision?: unknown };
      return typeof meta.revision === 'number' ? meta.revision : 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.warn('ignoring unreadable meta.json; the revision is rebuilt from the items', {
          error: (err as Error).message,
        });
      }
      return 0;
    }
  }

  #removeTempFiles(dir: string): void {
    for (const name of readdirSync(dir)) {
      if (name.startsWith(TEMP_PREFIX)) this.#removeStray(path.join(dir, name));
    }
  }

  #removeStray(file: string): void {
    try {
      unlinkSync(file);
    } catch (err) {
      log.warn('could not remove a stray temp file', { file, error: (err as Error).message });
    }
  }
}

export function createEmbeddedStore(dataDir: string): ConfigStore {
  return new EmbeddedStore(dataDir);
}
