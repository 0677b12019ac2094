// The in-memory side shared by every store (embedded, etcd, standalone): one map per
// resource, the published snapshot, and change listeners.
//
// Snapshots are built lazily and per resource: a write marks only its own
// resource stale, and the next snapshot reuses every other resource's frozen
// array from the previous one. A burst of route writes therefore rebuilds the
// route array at most once per snapshot taken, and never the other arrays.

import { logger } from '../core/log';
import { RESOURCES, type ConfigSnapshot, type ResourceName, type StoredItem } from './types';

const log = logger('store');

export function itemKey(resource: ResourceName, id: string): string {
  return `/apisix/${resource}/${id}`;
}

/** Freeze a JSON value and everything in it, so a snapshot can be shared without copies. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

type SnapshotArrays = { [R in ResourceName]: ConfigSnapshot[R] };

export class MemoryState {
  readonly items: Record<ResourceName, Map<string, StoredItem>>;
  revision = 0;
  private readonly listeners = new Set<(snapshot: ConfigSnapshot) => void>();
  private readonly arrays: Partial<SnapshotArrays> = {};
  private published: ConfigSnapshot | undefined;

  constructor() {
    const items = {} as Record<ResourceName, Map<string, StoredItem>>;
    for (const resource of RESOURCES) items[resource] = new Map();
    this.items = items;
  }

  get(resource: ResourceName, id: string): StoredItem | undefined {
    return this.items[resource].get(id);
  }

  list(resource: ResourceName): StoredItem[] {
    return [...this.items[resource].values()];
  }

  set(resource: ResourceName, id: string, item: StoredItem): void {
    this.items[resource].set(id, deepFreeze(item));
    this.markStale(resource);
  }

  remove(resource: ResourceName, id: string): boolean {
    const existed = this.items[resource].delete(id);
    if (existed) this.markStale(resource);
    return existed;
  }

  /** Replace everything at once (standalone reloads). */
  replaceAll(next: Record<ResourceName, Map<string, StoredItem>>): void {
    for (const resource of RESOURCES) {
      const map = this.items[resource];
      map.clear();
      for (const [id, item] of next[resource]) map.set(id, deepFreeze(item));
      this.markStale(resource);
    }
  }

  private markStale(resource: ResourceName): void {
    delete this.arrays[resource];
    this.published = undefined;
  }

  private array(resource: ResourceName): unknown[] {
    let array = this.arrays[resource] as unknown[] | undefined;
    if (!array) {
      array = [];
      for (const item of this.items[resource].values()) array.push(item.value);
      Object.freeze(array);
      (this.arrays as Record<ResourceName, unknown>)[resource] = array;
    }
    return array;
  }

  snapshot(): ConfigSnapshot {
    if (this.published && this.published.version === this.revision) return this.published;
    const arrays = {} as SnapshotArrays;
    for (const resource of RESOURCES) {
      (arrays as Record<ResourceName, unknown>)[resource] = this.array(resource);
    }
    this.published = Object.freeze({ version: this.revision, ...arrays });
    return this.published;
  }

  onChange(listener: (snapshot: ConfigSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  notify(): void {
    if (this.listeners.size === 0) return;
    const snapshot = this.snapshot();
    for (const listener of this.listeners) {
      try {
        listener(snapshot);
      } catch (err) {
        log.error('change listener failed', { error: (err as Error).message });
      }
    }
  }
}

/**
 * The read side every store shares: items live in a MemoryState, and reads,
 * snapshots and change listeners are answered from it. Subclasses fill the
 * state from their source (files, etcd, a YAML file).
 */
export abstract class MemoryBackedStore {
  protected readonly state = new MemoryState();

  get(resource: ResourceName, id: string): StoredItem | undefined {
    return this.state.get(resource, id);
  }

  list(resource: ResourceName): StoredItem[] {
    return this.state.list(resource);
  }

  snapshot(): ConfigSnapshot {
    return this.state.snapshot();
  }

  onChange(listener: (snapshot: ConfigSnapshot) => void): () => void {
    return this.state.onChange(listener);
  }
}
