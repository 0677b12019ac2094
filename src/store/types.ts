import type { Consumer, ConsumerGroup, GlobalRule, PluginConfig, Route, Service, Ssl, Upstream } from '../schema/types';

/** Resource names as they appear in Admin API paths and etcd keys. */
export const RESOURCES = [
  'routes',
  'services',
  'upstreams',
  'consumers',
  'consumer_groups',
  'global_rules',
  'plugin_configs',
  'plugin_metadata',
  'ssls',
] as const;

export type ResourceName = (typeof RESOURCES)[number];

/** One stored item, with the indexes the Admin API reports. */
export interface StoredItem<T = Record<string, unknown>> {
  key: string; // e.g. /apisix/routes/1
  value: T;
  createdIndex: number;
  modifiedIndex: number;
  /** Absolute expiry in ms since the epoch, for ?ttl= writes. */
  expiresAt?: number;
}

/**
 * The whole configuration at one version. The data plane compiles a snapshot
 * into its route table once and swaps it in atomically; snapshots are never
 * mutated after they are published.
 */
export interface ConfigSnapshot {
  version: number;
  routes: Route[];
  services: Service[];
  upstreams: Upstream[];
  consumers: Consumer[];
  consumer_groups: ConsumerGroup[];
  global_rules: GlobalRule[];
  plugin_configs: PluginConfig[];
  plugin_metadata: Array<Record<string, unknown> & { id: string }>;
  ssls: Ssl[];
}

export interface PutOptions {
  /** Seconds until the item expires (Admin API `?ttl=`). */
  ttl?: number;
  /** Compare-and-swap: fail with a conflict unless the stored modifiedIndex equals this. */
  prevIndex?: number;
}

/**
 * A configuration store: the embedded file store now, etcd beside it later.
 * Every write is durable when its promise resolves.
 */
export interface ConfigStore {
  /** Load persisted state; must be called once before anything else. */
  open(): Promise<void>;
  close(): Promise<void>;
  readonly readOnly: boolean;
  /** When readOnly: what is read-only and why, for the Admin API's refusal (the store's own words). */
  readonly readOnlyReason?: string;
  get(resource: ResourceName, id: string): StoredItem | undefined;
  list(resource: ResourceName): StoredItem[];
  /**
   * Admin API reads, for a store whose source can be out of reach (etcd): the
   * item, or the resource's items, as the source holds them now. Throws
   * PAL_ERR_ADMIN_STORE_UNAVAILABLE when the source cannot be read, so the
   * Admin API answers 503 as APISIX does instead of showing the in-memory copy
   * as current. A store that leaves these out is read through get() and list().
   */
  fetch?(resource: ResourceName, id: string): Promise<StoredItem | undefined>;
  fetchList?(resource: ResourceName): Promise<StoredItem[]>;
  put(resource: ResourceName, id: string, value: Record<string, unknown>, options?: PutOptions): Promise<StoredItem>;
  delete(resource: ResourceName, id: string): Promise<boolean>;
  /** A fresh id for POST, unique across restarts. */
  nextId(): Promise<string>;
  snapshot(): ConfigSnapshot;
  /** Called after every change (including TTL expiry) with the new snapshot. */
  onChange(listener: (snapshot: ConfigSnapshot) => void): () => void;
}
