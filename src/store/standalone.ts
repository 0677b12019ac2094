// The standalone store: configuration read from an APISIX-format YAML file
// (`routes:`, `upstreams:`, ... and a closing `#END` line, which is accepted but
// not required), validated with the Admin API's schemas, and reloaded when the
// file changes. Read-only: the Admin API refuses writes.
//
// Changes are noticed by fs.watch on the file's directory (editors and
// deployment tools usually replace the file, which a watch on the file itself
// would lose) and by polling every pollMs; both only reload when the content's
// SHA-256 differs from the last content seen. An invalid file is reported and
// the last good configuration keeps serving.

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { PAL_ERR_ADMIN_BAD_CONFIG, PAL_ERR_CONFIG } from '../core/errors';
import { logger } from '../core/log';
import type { PluginCatalog } from '../schema/catalog';
import { validateResource } from '../schema/index';
import { withStringReferences } from '../schema/references';
import { MemoryBackedStore, itemKey } from './memory';
import { RESOURCES, type ConfigStore, type ResourceName, type StoredItem } from './types';

const log = logger('store.standalone');

export interface StandaloneOptions {
  /** How often to re-read the file, in ms (default 1000). */
  pollMs?: number;
  /** Called with a message naming the resource, item and field when a reload is rejected. */
  onError?: (msg: string) => void;
  /** Checks plugin configurations; without it plugin configs are loaded unchecked. */
  plugins?: PluginCatalog;
}

type ItemMaps = Record<ResourceName, Map<string, StoredItem>>;

function emptyMaps(): ItemMaps {
  const maps = {} as ItemMaps;
  for (const resource of RESOURCES) maps[resource] = new Map();
  return maps;
}

function idOf(resource: ResourceName, item: Record<string, unknown>, index: number): string {
  const id = resource === 'consumers' ? item.username : item.id;
  // APISIX names items without an id after their position.
  return id === undefined || id === null ? `arr_${index + 1}` : String(id);
}

/** Parse and validate a whole YAML document. Throws an Error whose message names the bad item. */
export function parseStandaloneConfig(
  text: string,
  plugins?: PluginCatalog,
): Record<ResourceName, Array<[string, Record<string, unknown>]>> {
  let document: unknown;
  try {
    document = YAML.parse(text);
  } catch (err) {
    throw new Error(`invalid YAML: ${(err as Error).message}`);
  }
  if (document === null || document === undefined) document = {};
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new Error('invalid YAML: the top level must be a mapping of resource names to lists');
  }
  const top = document as Record<string, unknown>;
  const parsed = {} as Record<ResourceName, Array<[string, Record<string, unknown>]>>;
  const seen = new Map<ResourceName, Set<string>>();
  const lookup = {
    get: (resource: ResourceName, id: string) => (seen.get(resource)?.has(id) ? ({} as StoredItem) : undefined),
  };
  for (const resource of RESOURCES) {
    parsed[resource] = [];
    const ids = new Set<string>();
    seen.set(resource, ids);
    const list = top[resource];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new Error(`${resource}: expected a list`);
    list.forEach((entry: unknown, index) => {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new Error(`${resource}[${index}]: expected a mapping`);
      }
      const item = entry as Record<string, unknown>;
      const id = idOf(resource, item, index);
      const where = `${resource}[${index}] (id ${JSON.stringify(id)})`;
      if (ids.has(id)) throw new Error(`${where}: duplicate id`);
      const err = validateResource(resource, item, { store: lookup, plugins, id, checkReferences: false });
      if (err !== undefined) throw new Error(`${where}: ${err}`);
      ids.add(id);
      // As APISIX does, an item without an id is stored under its positional one. Ids and
      // references are kept as strings (YAML `id: 1` is a number), since lookups are by string.
      const value = withStringReferences(resource, resource === 'consumers' ? item : { ...item, id });
      parsed[resource].push([id, value]);
    });
  }
  return parsed;
}

export class StandaloneStore extends MemoryBackedStore implements ConfigStore {
  readonly readOnly = true;
  readonly readOnlyReason: string;
  readonly #file: string;
  readonly #pollMs: number;
  readonly #onError: ((msg: string) => void) | undefined;
  readonly #plugins: PluginCatalog | undefined;
  #lastHash = '';
  #poller: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;
  #closed = false;

  constructor(yamlPath: string, options: StandaloneOptions = {}) {
    super();
    this.#file = path.resolve(yamlPath);
    this.readOnlyReason = `the configuration is read-only: it is read from the standalone file ${this.#file}; edit that file instead`;
    this.#pollMs = options.pollMs ?? 1000;
    this.#onError = options.onError;
    this.#plugins = options.plugins;
  }

  async open(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      throw PAL_ERR_CONFIG(`cannot read the standalone configuration ${this.#file}: ${(err as Error).message}`);
    }
    try {
      this.#apply(text);
    } catch (err) {
      throw PAL_ERR_CONFIG(`invalid standalone configuration ${this.#file}: ${(err as Error).message}`);
    }
    this.#poller = setInterval(() => this.reload(), this.#pollMs);
    this.#poller.unref();
    try {
      const base = path.basename(this.#file);
      this.#watcher = watch(path.dirname(this.#file), (_event, name) => {
        if (name !== null && name !== base) return;
        // A replace arrives as several events; reload once they settle.
        if (this.#debounce) clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.reload(), 20);
        this.#debounce.unref();
      });
      this.#watcher.on('error', (err) => log.warn('file watch failed; polling only', { error: err.message }));
      this.#watcher.unref();
    } catch (err) {
      log.warn('file watch unavailable; polling only', { error: (err as Error).message });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#poller) clearInterval(this.#poller);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#watcher?.close();
    await this.#reloading;
  }

  /** Re-read the file now; resolves once the new content (if any) is applied or rejected. */
  reload(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (!this.#reloading) {
      this.#reloading = this.#reloadOnce().finally(() => {
        this.#reloading = undefined;
      });
    }
    return this.#reloading;
  }

  async #reloadOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      // A file being replaced can vanish for a moment; the next poll sees the new one.
      log.debug('cannot read the standalone configuration', { error: (err as Error).message });
      return;
    }
    if (this.#closed) return;
    try {
      this.#apply(text);
    } catch (err) {
      const message = `${this.#file}: ${(err as Error).message}`;
      log.error('rejected the standalone configuration; still serving the last good one', { error: message });
      this.#onError?.(message);
    }
  }

  /** Validate and swap in `text`; throws, leaving the state alone, when it is invalid. */
  #apply(text: string): void {
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.#lastHash) return;
    // Remember bad content too, so it is reported once rather than on every poll.
    this.#lastHash = hash;
    const parsed = parseStandaloneConfig(text, this.#plugins);
    const revision = this.state.revision + 1;
    const next = emptyMaps();
    for (const resource of RESOURCES) {
      for (const [id, value] of parsed[resource]) {
        const previous = this.state.get(resource, id);
        const unchanged = previous !== undefined && JSON.stringify(previous.value) === JSON.stringify(value);
        next[resource].set(id, {
          key: itemKey(resource, id),
          value,
          createdIndex: previous?.createdIndex ?? revision,
          modifiedIndex: unchanged ? previous.modifiedIndex : revision,
        });
      }
    }
    this.state.revision = revision;
    this.state.replaceAll(next);
    log.info('loaded the standalone configuration', { file: this.#file, version: revision });
    this.state.notify();
  }

  put(): Promise<StoredItem> {
    return Promise.reject(PAL_ERR_ADMIN_BAD_CONFIG(this.readOnlyReason));
  }

  delete(): Promise<boolean> {
    return Promise.reject(PAL_ERR_ADMIN_BAD_CONFIG(this.readOnlyReason));
  }

  nextId(): Promise<string> {
    return Promise.reject(PAL_ERR_ADMIN_BAD_CONFIG(this.readOnlyReason));
  }
}

export function createStandaloneStore(yamlPath: string, opts?: StandaloneOptions): ConfigStore {
  return new StandaloneStore(yamlPath, opts);
}
