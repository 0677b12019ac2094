// The etcd store: the configuration centre shared by several gateways, in
// APISIX's layout, so an etcd written by APISIX tooling serves routes here and
// the reverse.
//
//   key:   <prefix>/<resource>/<id>     (prefix `/apisix` unless configured)
//   value: the item's JSON exactly as APISIX stores it (id, create_time, update_time, ...)
//   createdIndex = the key's create_revision, modifiedIndex = its mod_revision
//
// Keys that are not `<resource>/<id>` under a known resource (APISIX's
// `init_dir` placeholders, `gen_id`, consumer credentials, stream routes) are
// ignored; a value that is not a JSON object is logged and skipped.
//
// Loading and watching follow APISIX's config_etcd.lua: read the whole prefix,
// remember its revision, watch the prefix from the next revision and apply the
// events in order. A watch cancelled by etcd (compaction) or a revision going
// backwards (etcd was wiped) leads to a full resync. When etcd is unreachable
// the last config keeps serving, the watch is retried with exponential backoff,
// `reachable` turns false and one line is logged per outage.
//
// Writes go straight to etcd (compare-and-swap on mod_revision, leases for
// TTLs) and resolve once the watch has delivered them, so a read after a write
// sees it and the view changes only from the watch, once per event. A write
// etcd does not take fails with 503 {error_msg} naming etcd's error, as in APISIX.
//
// Admin API reads (fetch, fetchList) read etcd too, as APISIX's do: during an
// outage they are 503 like the writes, while the data plane keeps serving the
// last loaded view (get, list, snapshot).

import { Etcd3, type IKeyValue, type IOptions, type IWatchResponse, type Watcher } from 'etcd3';
import {
  PAL_ERR_ADMIN_BAD_CONFIG,
  PAL_ERR_ADMIN_CONFLICT,
  PAL_ERR_ADMIN_STORE_UNAVAILABLE,
  PAL_ERR_CONFIG,
  errorText,
} from '../core/errors';
import { logger } from '../core/log';
import { MemoryBackedStore } from './memory';
import { RESOURCES, type ConfigStore, type PutOptions, type ResourceName, type StoredItem } from './types';

const log = logger('store.etcd');

export const DEFAULT_ETCD_PREFIX = '/apisix';

/** APISIX deployment roles; a data plane only reads the configuration. */
export type DeploymentRole = 'traditional' | 'data_plane' | 'control_plane';

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  hosts: string[];
  /** Key prefix; `/apisix` by default. */
  prefix?: string;
  /** `data_plane` makes the store read-only. */
  role?: DeploymentRole;
  /** Refuse writes whatever the role. */
  readOnly?: boolean;
  username?: string;
  password?: string;
  /** Deadline of one etcd request (not the watch); 5 s by default. */
  requestTimeoutMs?: number;
  /** Longest wait between reconnection attempts; 5 s by default. */
  maxBackoffMs?: number;
}

const RANGE_PAGE_SIZE = 1000;
const FIRST_BACKOFF_MS = 100;

type ItemMaps = Record<ResourceName, Map<string, StoredItem>>;

function emptyMaps(): ItemMaps {
  const maps = {} as ItemMaps;
  for (const resource of RESOURCES) maps[resource] = new Map();
  return maps;
}

const resourceNames: ReadonlySet<string> = new Set(RESOURCES);

/** `/apisix`, `apisix/` and `/apisix/` all mean `/apisix`. */
export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.trim().replace(/\/+$/, '');
  return trimmed.startsWith('/') ? trimmed : '/' + trimmed;
}

/** The etcd settings from PALISADE_ETCD_HOSTS (comma-separated URLs) and PALISADE_ETCD_PREFIX, if set. */
export function etcdOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcdStoreOptions | undefined {
  const hosts = (env.PALISADE_ETCD_HOSTS ?? '')
    .split(',')
    .map((host) => host.trim())
    .filter((host) => host !== '');
  if (hosts.length === 0) return undefined;
  const prefix = env.PALISADE_ETCD_PREFIX?.trim();
  return prefix ? { hosts, prefix } : { hosts };
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

/** What a read-only etcd store tells a writer, or undefined when it takes writes. */
function readOnlyReason(options: EtcdStoreOptions, prefix: string): string | undefined {
  const where = `${prefix} in etcd at ${options.hosts.join(',')}`;
  if (options.role === 'data_plane') {
    return (
      `the configuration is read-only: this node is a data plane (deployment.role data_plane) and only watches ` +
      `${where}; write through the Admin API of a control_plane or traditional node on the same etcd`
    );
  }
  if (options.readOnly === true) {
    return `the configuration is read-only: this etcd store only watches ${where}; write through the Admin API`;
  }
  return undefined;
}

function sameItems(a: ItemMaps, b: ItemMaps): boolean {
  for (const resource of RESOURCES) {
    if (a[resource].size !== b[resource].size) return false;
    for (const [id, item] of a[resource]) {
      const other = b[resource].get(id);
      if (!other || other.modifiedIndex !== item.modifiedIndex || other.createdIndex !== item.createdIndex) {
        return false;
      }
    }
  }
  return true;
}

interface RevisionWaiter {
  revision: number;
  resolve(): void;
  timer: NodeJS.Timeout;
}

export class EtcdStore extends MemoryBackedStore implements ConfigStore {
  readonly readOnly: boolean;
  readonly readOnlyReason: string | undefined;
  readonly prefix: string;
  readonly #hosts: string[];
  readonly #client: Etcd3;
  readonly #requestTimeoutMs: number;
  readonly #maxBackoffMs: number;
  /** The etcd revision the in-memory view reflects. */
  #etcdRevision = 0;
  #watcher: Watcher | undefined;
  #reachable = false;
  #opened = false;
  #closed = false;
  #backoffMs = FIRST_BACKOFF_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** Whether the scheduled reconnection reloads everything first. */
  #pendingResync = false;
  #notifyScheduled = false;
  #waiters: RevisionWaiter[] = [];
  /** Expiry of the leases this store granted, by lease id, to report `expiresAt`. */
  readonly #leaseExpiry = new Map<string, number>();

  constructor(options: EtcdStoreOptions) {
    super();
    if (options.hosts.length === 0) throw PAL_ERR_CONFIG('the etcd store needs at least one host');
    this.#hosts = [...options.hosts];
    this.prefix = normalisePrefix(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.readOnly = options.readOnly === true || options.role === 'data_plane';
    this.readOnlyReason = readOnlyReason(options, this.prefix);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5000;
    const clientOptions: IOptions = {
      hosts: this.#hosts,
      // A request to a dead etcd must fail, not wait for it; the watch stream has no deadline.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.#requestTimeoutMs }),
      // etcd3's own retries and circuit breaker would hide an outage for seconds; the store retries itself.
      faultHandling: { host: () => passThroughPolicy, global: passThroughPolicy, watchBackoff: shortWatchBackoff },
      // Notice an etcd that stopped answering without closing the connection.
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      },
    };
    if (options.username !== undefined) {
      clientOptions.auth = { username: options.username, password: options.password ?? '' };
    }
    this.#client = new Etcd3(clientOptions);
  }

  /** False while etcd cannot be reached; the last known config keeps serving meanwhile. */
  get reachable(): boolean {
    return this.#reachable;
  }

  async open(): Promise<void> {
    if (this.#opened) throw PAL_ERR_CONFIG('the etcd store is already open');
    this.#opened = true;
    try {
      await this.#resync();
    } catch (err) {
      this.#client.close();
      throw PAL_ERR_CONFIG(`cannot load the configuration from etcd at ${this.#hosts.join(',')}: ${errorText(err)}`);
    }
    this.#reachable = true;
    this.#startWatch();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.#waiters = [];
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) {
      watcher.removeAllListeners();
      watcher.on('error', () => undefined);
      // Detaching first keeps etcd3 from reopening the watch stream once the client is closed.
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1000);
      });
      await Promise.race([watcher.cancel().catch(() => undefined), giveUp]);
      clearTimeout(timer);
    }
    this.#client.close();
  }

  async put(
    resource: ResourceName,
    id: string,
    value: Record<string, unknown>,
    options: PutOptions = {},
  ): Promise<StoredItem> {
    this.#assertWritable();
    const key = Buffer.from(this.#etcdKey(resource, id));
    let lease: string | undefined;
    let expiresAt: number | undefined;
    const ttl = options.ttl;
    if (ttl !== undefined) {
      // etcd leases count whole seconds (and have a minimum of about 2 s); round up, never down.
      const granted = await this.#request(() => this.#client.leaseClient.leaseGrant({ TTL: Math.ceil(ttl) }));
      lease = granted.ID;
      expiresAt = Date.now() + Number(granted.TTL) * 1000;
      this.#rememberLease(lease, expiresAt);
    }
    const request = { key, value: Buffer.from(JSON.stringify(value)), lease, prev_kv: true };
    let revision: number;
    let previous: IKeyValue | undefined;
    if (options.prevIndex === undefined) {
      const reply = await this.#request(() => this.#client.kv.put(request));
      revision = Number(reply.header.revision);
      previous = reply.prev_kv ?? undefined;
    } else {
      const reply = await this.#request(() =>
        this.#client.kv.txn({
          compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: options.prevIndex }],
          success: [{ request_put: request }],
        }),
      );
      if (!reply.succeeded) {
        if (lease !== undefined) this.#revokeQuietly(lease);
        throw PAL_ERR_ADMIN_CONFLICT('value changed before overwritten');
      }
      revision = Number(reply.header.revision);
      previous = reply.responses[0]?.response_put?.prev_kv ?? undefined;
    }
    await this.#waitForRevision(revision);
    const current = this.state.get(resource, id);
    if (current && current.modifiedIndex === revision) return current;
    // The watch has not caught up (or a later write already replaced this one): answer from the write itself.
    const item: StoredItem = {
      key: this.#etcdKey(resource, id),
      value: structuredClone(value),
      createdIndex: previous ? Number(previous.create_revision) : revision,
      modifiedIndex: revision,
    };
    if (expiresAt !== undefined) item.expiresAt = expiresAt;
    return item;
  }

  async delete(resource: ResourceName, id: string): Promise<boolean> {
    this.#assertWritable();
    const key = Buffer.from(this.#etcdKey(resource, id));
    const reply = await this.#request(() => this.#client.kv.deleteRange({ key }));
    if (Number(reply.deleted) === 0) return false;
    await this.#waitForRevision(Number(reply.header.revision));
    return true;
  }

  async nextId(): Promise<string> {
    this.#assertWritable();
    // APISIX's ids: the revision of a write to <prefix>/gen_id, zero-padded to 20 digits.
    const key = Buffer.from(`${this.prefix}/gen_id`);
    const reply = await this.#request(() => this.#client.kv.put({ key, value: Buffer.from('0') }));
    return reply.header.revision.padStart(20, '0');
  }

  /**
   * GET one for the Admin API: the key as etcd holds it now, as APISIX's Admin
   * API reads it (admin/resource.lua), so an unreachable etcd is a 503 rather
   * than the last loaded copy passed off as current.
   */
  async fetch(resource: ResourceName, id: string): Promise<StoredItem | undefined> {
    this.#assertOpen();
    const key = this.#etcdKey(resource, id);
    // An id with a slash names a nested key (a consumer credential), which the store does not serve.
    if (this.#locate(key) === undefined) return undefined;
    const reply = await this.#request(() => this.#client.kv.range({ key: Buffer.from(key) }));
    const kv = reply.kvs[0];
    return kv === undefined ? undefined : this.#toItem(key, id, kv);
  }

  /** GET list for the Admin API: the resource's items as etcd holds them now (see fetch). */
  async fetchList(resource: ResourceName): Promise<StoredItem[]> {
    this.#assertOpen();
    const maps = emptyMaps();
    await this.#request(() => this.#readItems(`${this.prefix}/${resource}/`, maps));
    return [...maps[resource].values()];
  }

  #etcdKey(resource: ResourceName, id: string): string {
    return `${this.prefix}/${resource}/${id}`;
  }

  #assertOpen(): void {
    if (!this.#opened) throw PAL_ERR_CONFIG('the etcd store is not open');
    if (this.#closed) throw PAL_ERR_CONFIG('the etcd store is closed');
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.readOnlyReason !== undefined) throw PAL_ERR_ADMIN_BAD_CONFIG(this.readOnlyReason);
  }

  /**
   * Run one etcd request. A failure is logged and becomes a 503 whose error_msg is
   * the etcd client's error, as APISIX answers a failed etcd call (admin/resource.lua);
   * the client's errors do not always say they are about etcd, so the message does.
   */
  async #request<T>(call: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await call();
    } catch (err) {
      log.error('etcd request failed', { hosts: this.#hosts, error: errorText(err) });
      throw PAL_ERR_ADMIN_STORE_UNAVAILABLE(`etcd request failed: ${errorText(err)}`);
    }
    // etcd answers again: reconnect the watch now rather than at the end of the backoff.
    if (this.#reconnectTimer && !this.#reachable) this.#scheduleReconnect(this.#pendingResync, 0);
    return result;
  }

  #revokeQuietly(lease: string): void {
    this.#leaseExpiry.delete(lease);
    this.#client.leaseClient.leaseRevoke({ ID: lease }).catch((err: unknown) => {
      log.debug('could not revoke an unused lease', { lease, error: errorText(err) });
    });
  }

  #rememberLease(lease: string, expiresAt: number): void {
    const now = Date.now();
    for (const [id, expiry] of this.#leaseExpiry) if (expiry < now) this.#leaseExpiry.delete(id);
    this.#leaseExpiry.set(lease, expiresAt);
  }

  // ---- reading etcd ----

  /** Where a key belongs, or undefined for keys the store does not serve. */
  #locate(key: string): { resource: ResourceName; id: string } | undefined {
    if (!key.startsWith(this.prefix + '/')) return undefined;
    const rest = key.slice(this.prefix.length + 1);
    const slash = rest.indexOf('/');
    if (slash <= 0) return undefined; // gen_id, or a bare resource name
    const resource = rest.slice(0, slash);
    const id = rest.slice(slash + 1);
    // An empty id is an init_dir placeholder; a nested one is e.g. a consumer credential.
    if (!resourceNames.has(resource) || id === '' || id.includes('/')) return undefined;
    return { resource: resource as ResourceName, id };
  }

  /** The stored item for a key-value pair, or undefined (logged) when its value is not a JSON object. */
  #toItem(key: string, id: string, kv: IKeyValue): StoredItem | undefined {
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString('utf8'));
    } catch (err) {
      log.warn('skipping an etcd value that is not JSON', { key, error: errorText(err) });
      return undefined;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      log.warn('skipping an etcd value that is not a JSON object', { key });
      return undefined;
    }
    const fields = value as Record<string, unknown>;
    // The data plane keys everything by string id; APISIX tooling may leave it out or write a number.
    if (typeof fields.id !== 'string') fields.id = id;
    const item: StoredItem = {
      key,
      value: fields,
      createdIndex: Number(kv.create_revision),
      modifiedIndex: Number(kv.mod_revision),
    };
    const expiresAt = kv.lease && kv.lease !== '0' ? this.#leaseExpiry.get(kv.lease) : undefined;
    if (expiresAt !== undefined) item.expiresAt = expiresAt;
    return item;
  }

  /**
   * Read every item under `keyPrefix`, one revision-pinned page at a time, into
   * `maps`; returns the revision read at.
   */
  async #readItems(keyPrefix: string, maps: ItemMaps): Promise<number> {
    const start = Buffer.from(keyPrefix);
    const rangeEnd = prefixRangeEnd(start);
    let revision: number | undefined;
    let from = start;
    for (;;) {
      const page = await this.#client.kv.range({
        key: from,
        range_end: rangeEnd,
        limit: RANGE_PAGE_SIZE,
        revision,
      });
      revision ??= Number(page.header.revision);
      for (const kv of page.kvs) {
        const key = kv.key.toString('utf8');
        const place = this.#locate(key);
        if (!place) continue;
        const item = this.#toItem(key, place.id, kv);
        if (item) maps[place.resource].set(place.id, item);
      }
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])]);
    }
    return revision;
  }

  /** Read the whole prefix and replace the view with it. */
  async #resync(): Promise<void> {
    const maps = emptyMaps();
    const revision = await this.#readItems(this.prefix + '/', maps);
    if (revision < this.#etcdRevision) {
      log.warn('etcd revision went backwards; the configuration was reloaded', {
        was: this.#etcdRevision,
        now: revision,
      });
    }
    this.#etcdRevision = revision;
    if (!sameItems(maps, this.state.items)) {
      this.state.replaceAll(maps);
      this.#changed();
    }
    this.#releaseWaiters();
  }

  #startWatch(): void {
    const watcher = this.#client
      .watch()
      .prefix(this.prefix + '/')
      .startRevision(String(this.#etcdRevision + 1))
      .watcher();
    this.#watcher = watcher;
    watcher.on('connected', (reply: IWatchResponse) => this.#onWatchConnected(watcher, reply));
    watcher.on('data', (reply: IWatchResponse) => this.#onWatchData(watcher, reply));
    watcher.on('disconnected', (err: Error) => this.#onWatchLost(watcher, err, false));
    watcher.on('error', (err: Error) => this.#onWatchLost(watcher, err, true));
  }

  #onWatchConnected(watcher: Watcher, reply: IWatchResponse): void {
    if (watcher !== this.#watcher) return;
    const revision = Number(reply.header.revision);
    if (revision < this.#etcdRevision) {
      // etcd lost its history (restored or wiped): what we hold may no longer exist.
      this.#dropWatcher(watcher, true);
      this.#scheduleReconnect(true, 0);
      return;
    }
    this.#backoffMs = FIRST_BACKOFF_MS;
    if (!this.#reachable) {
      this.#reachable = true;
      log.info('etcd reachable again', { hosts: this.#hosts });
    }
  }

  #onWatchData(watcher: Watcher, reply: IWatchResponse): void {
    if (watcher !== this.#watcher) return;
    if (Number(reply.compact_revision) > 0) {
      this.#dropWatcher(watcher, false);
      this.#scheduleReconnect(true, 0);
      return;
    }
    // Events at or below the revision already reflected were loaded by the last resync.
    const floor = this.#etcdRevision;
    let changed = false;
    for (const event of reply.events) {
      const revision = Number(event.kv.mod_revision);
      if (revision <= floor) continue;
      if (revision > this.#etcdRevision) this.#etcdRevision = revision;
      const key = event.kv.key.toString('utf8');
      const place = this.#locate(key);
      if (!place) continue;
      if (event.type === 'Delete') {
        changed = this.state.remove(place.resource, place.id) || changed;
        continue;
      }
      const item = this.#toItem(key, place.id, event.kv);
      if (item) {
        this.state.set(place.resource, place.id, item);
        changed = true;
      } else {
        // The key no longer holds a usable item; serving its old value would be wrong.
        changed = this.state.remove(place.resource, place.id) || changed;
      }
    }
    if (changed) this.#changed();
    this.#releaseWaiters();
  }

  #onWatchLost(watcher: Watcher, err: Error, cancelledByEtcd: boolean): void {
    if (watcher !== this.#watcher || this.#closed) return;
    if (cancelledByEtcd) {
      // Most often the watch asked for a compacted revision: reload everything, then watch again.
      log.info('etcd cancelled the watch; reloading the configuration', { error: errorText(err) });
      this.#dropWatcher(watcher, false);
      this.#scheduleReconnect(true, 0);
      return;
    }
    this.#dropWatcher(watcher, true);
    this.#markUnreachable(err);
    this.#scheduleReconnect(false, this.#nextBackoff());
  }

  /** Forget a watcher; `detach` also takes it off etcd3's watch stream (not needed once etcd cancelled it). */
  #dropWatcher(watcher: Watcher, detach: boolean): void {
    this.#watcher = undefined;
    watcher.removeAllListeners();
    watcher.on('error', () => undefined);
    if (detach) watcher.cancel().catch(() => undefined);
  }

  #markUnreachable(err: unknown): void {
    if (!this.#reachable) return;
    this.#reachable = false;
    log.warn('etcd unreachable; serving the last known configuration', {
      hosts: this.#hosts,
      error: errorText(err),
    });
  }

  #nextBackoff(): number {
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#maxBackoffMs);
    return delay;
  }

  /** Watch again from the next revision, after a full reload when `resync` is set. */
  #scheduleReconnect(resync: boolean, delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#reconnectTimer);
    this.#pendingResync = resync;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#reconnect(resync).catch((err: unknown) => {
        log.error('etcd reconnection failed unexpectedly', { error: errorText(err) });
      });
    }, delayMs);
  }

  async #reconnect(resync: boolean): Promise<void> {
    if (this.#closed) return;
    if (resync) {
      try {
        await this.#resync();
      } catch (err) {
        if (this.#closed) return;
        this.#markUnreachable(err);
        this.#scheduleReconnect(true, this.#nextBackoff());
        return;
      }
      if (this.#closed) return;
    }
    this.#startWatch();
  }

  // ---- publishing ----

  /** Give the changed view a new version and tell listeners once this event-loop turn is over. */
  #changed(): void {
    // Versions only grow, even when etcd's revision goes back after a wipe.
    this.state.revision = Math.max(this.#etcdRevision, this.state.revision + 1);
    if (this.#notifyScheduled) return;
    this.#notifyScheduled = true;
    // Coalesce a burst of events into one snapshot per turn.
    setImmediate(() => {
      this.#notifyScheduled = false;
      if (!this.#closed) this.state.notify();
    });
  }

  #waitForRevision(revision: number): Promise<void> {
    if (this.#etcdRevision >= revision || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: RevisionWaiter = {
        revision,
        resolve,
        // If the watch is down the write still happened; answer rather than hang.
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((other) => other !== waiter);
          resolve();
        }, this.#requestTimeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  #releaseWaiters(): void {
    if (this.#waiters.length === 0) return;
    const waiting: RevisionWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.revision <= this.#etcdRevision) {
        clearTimeout(waiter.timer);
        waiter.resolve();
      } else {
        waiting.push(waiter);
      }
    }
    this.#waiters = waiting;
  }
}

type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A cockatiel policy that just runs the call: etcd3 only ever calls `execute`. */
const passThroughPolicy = {
  execute: <T>(call: (context: { signal: AbortSignal }) => PromiseLike<T> | T) =>
    Promise.resolve().then(() => call({ signal: new AbortController().signal })),
} as unknown as FaultPolicy;

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * etcd3 re-arms its watch stream on this backoff even when the store has taken
 * its watcher off (the store reconnects on its own backoff); a short constant
 * delay keeps those timers from holding a closed store's process for 30 s.
 */
const shortWatchBackoff: WatchBackoff = {
  duration: FIRST_BACKOFF_MS,
  next: () => shortWatchBackoff,
};

export function createEtcdStore(options: EtcdStoreOptions): EtcdStore {
  return new EtcdStore(options);
}
