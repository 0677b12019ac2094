// The primary process: owns the config store and the Admin API, runs N
// data-plane workers through node:cluster, pushes every config change to
// them, replaces crashed workers, rolls workers over on reload, and drains
// them on stop. It never serves proxy traffic itself, so a config that fails
// to compile in a worker cannot take it down.

import cluster, { type Worker } from 'node:cluster';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminServer } from '../admin/server';
import { resolveAdminKeys } from '../config/admin-key';
import { formatAddress } from '../config/format';
import type { PalisadeConfig } from '../config/types';
import { logger, setLogLevel } from '../core/log';
import type { BackendName } from '../native/backend';
import type { ConfigStore } from '../store/types';
import { isWorkerMessage, type PrimaryMessage, type WorkerMessage, type WorkerSettings } from './messages';
import { type GatewayStatus, removeRuntimeFiles, runningPid, writePidFile, writeStatusFile } from './runtime-files';
import { createConfigStore } from './store';

const log = logger('primary');

// By default (SCHED_RR) the primary accepts every connection and hands it to a
// worker over IPC, which puts the primary on the hot path and adds a hop per
// connection. SCHED_NONE shares the listening socket so each worker accepts
// directly and the kernel spreads connections. Must be set before any fork.
cluster.schedulingPolicy = cluster.SCHED_NONE;

/** How long a worker may take from fork to listening. */
const WORKER_START_TIMEOUT_MS = 15_000;
/** Grace on top of the drain timeout before a worker is killed. */
const DRAIN_GRACE_MS = 5_000;
const STATUS_WRITE_DELAY_MS = 50;

type WorkerState = 'starting' | 'ready' | 'draining';

interface WorkerRecord {
  worker: Worker;
  settings: WorkerSettings;
  state: WorkerState;
  backend: BackendName | undefined;
  appliedVersion: number;
  addresses: string[];
}

export interface PrimaryOptions {
  /** Re-reads config.yaml for `palisade reload` / SIGHUP. */
  reloadConfig: () => PalisadeConfig;
  /** Where the one-time "generated admin key" line goes (stdout). */
  announce?: (line: string) => void;
}

function workerSettings(config: PalisadeConfig): WorkerSettings {
  return {
    listen: config.proxy.listen,
    limits: config.proxy.limits,
    backend: config.native.backend,
    logLevel: config.log.level,
    drainTimeoutMs: config.proxy.drainTimeoutMs,
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Primary {
  #config: PalisadeConfig;
  readonly #options: PrimaryOptions;
  readonly #startedAt = new Date().toISOString();
  #store: ConfigStore | undefined;
  #admin: AdminServer | undefined;
  #adminAddress: string | undefined;
  readonly #workers = new Map<number, WorkerRecord>();
  #stopping = false;
  #reloading: Promise<void> | undefined;
  #broadcastScheduled = false;
  #statusTimer: NodeJS.Timeout | undefined;
  #recentCrashes: number[] = [];
  #unsubscribe: (() => void) | undefined;

  constructor(config: PalisadeConfig, options: PrimaryOptions) {
    this.#config = config;
    this.#options = options;
  }

  get config(): PalisadeConfig {
    return this.#config;
  }

  /** Open the store, start the Admin API and the workers, write the pid file. */
  async start(): Promise<void> {
    const { dataDir } = this.#config.store;
    setLogLevel(this.#config.log.level);
    fs.mkdirSync(dataDir, { recursive: true });
    const other = runningPid(dataDir);
    if (other !== undefined && other !== process.pid) {
      throw new Error(`already running (pid ${other}, data dir ${dataDir})`);
    }
    writePidFile(dataDir, process.pid);

    cluster.setupPrimary({ exec: path.join(__dirname, 'worker-main.js') });

    const store = createConfigStore(this.#config, log);
    await store.open();
    this.#store = store;
    this.#unsubscribe = store.onChange(() => this.#scheduleBroadcast());

    await this.#startAdmin();

    const settings = workerSettings(this.#config);
    await Promise.all(Array.from({ length: this.#config.workers }, () => this.#startWorker(settings)));
    log.info('gateway started', {
      pid: process.pid,
      proxy: this.#proxyAddresses(),
      admin: this.#adminAddress,
      workers: this.#config.workers,
      configVersion: store.snapshot().version,
    });
    this.#writeStatus();
  }

  async #startAdmin(): Promise<void> {
    const store = this.#store as ConfigStore;
    const { admin, store: storeConfig } = this.#config;
    const resolved = resolveAdminKeys(admin.keys, storeConfig.dataDir);
    if (resolved.generated) {
      const announce = this.#options.announce ?? ((line: string) => process.stdout.write(line + '\n'));
      announce(`palisade: generated admin key ${resolved.generated.key} (stored in ${resolved.generated.file})`);
    }
    const server = new AdminServer({
      host: admin.listen.host,
      port: admin.listen.port,
      store,
      keys: resolved.keys,
      allow: admin.allow,
      maxBodyBytes: admin.maxBodyBytes,
    });
    const bound = await server.listen();
    this.#admin = server;
    this.#adminAddress = formatAddress({ host: bound.address, port: bound.port });
  }

  /** Fork one worker and resolve once it listens; reject if it fails to. */
  #startWorker(settings: WorkerSettings): Promise<WorkerRecord> {
    const store = this.#store as ConfigStore;
    const worker = cluster.fork();
    const record: WorkerRecord = {
      worker,
      settings,
      state: 'starting',
      backend: undefined,
      appliedVersion: -1,
      addresses: [],
    };
    this.#workers.set(worker.id, record);

    return new Promise<WorkerRecord>((resolve, reject) => {
      let settled = false;
      const fail = (reason: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        record.state = 'draining'; // a failed start is not a crash to respawn
        worker.process.kill('SIGKILL');
        reject(new Error(`data-plane worker failed to start: ${reason}`));
      };
      const timer = setTimeout(() => fail(`no answer within ${WORKER_START_TIMEOUT_MS} ms`), WORKER_START_TIMEOUT_MS);

      worker.on('message', (raw: unknown) => {
        if (!isWorkerMessage(raw)) return;
        const message: WorkerMessage = raw;
        if (message.type === 'listening') {
          record.backend = message.backend;
          record.addresses = message.addresses.map((a) => formatAddress({ host: a.address, port: a.port }));
          if (record.state === 'starting') record.state = 'ready';
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            resolve(record);
          }
          this.#scheduleStatus();
        } else if (message.type === 'start-failed') {
          fail(message.error);
        } else if (message.type === 'applied') {
          record.appliedVersion = message.version;
          this.#scheduleStatus();
        } else {
          log.error('worker rejected a config; it keeps serving the previous one', {
            pid: worker.process.pid,
            version: message.version,
            error: message.error,
          });
        }
      });
      worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#workers.delete(worker.id);
        if (!settled) fail(`exited (code ${code}, signal ${signal})`);
        else this.#onWorkerExit(record, code, signal);
      });
      this.#send(worker, { type: 'start', settings, snapshot: store.snapshot() });
    });
  }

  #onWorkerExit(record: WorkerRecord, code: number | null, signal: NodeJS.Signals | null): void {
    this.#scheduleStatus();
    if (record.state === 'draining' || this.#stopping) return;
    // A crash: replace it, backing off when workers keep dying.
    const now = Date.now();
    this.#recentCrashes = this.#recentCrashes.filter((t) => now - t < 30_000);
    this.#recentCrashes.push(now);
    const delay = Math.min(5_000, 100 * 2 ** (this.#recentCrashes.length - 1));
    log.error('data-plane worker died; starting a replacement', {
      pid: record.worker.process.pid,
      code,
      signal,
      restartInMs: delay,
    });
    setTimeout(() => {
      if (this.#stopping) return;
      this.#startWorker(workerSettings(this.#config)).catch((err: unknown) => {
        log.error('replacement worker failed to start', { error: errorText(err) });
        // The failed start is not respawned by itself; try again later.
        this.#onWorkerExit(record, null, null);
      });
    }, delay).unref();
  }

  #send(worker: Worker, message: PrimaryMessage): void {
    if (!worker.isConnected()) return;
    try {
      worker.send(message);
    } catch (err) {
      log.warn('could not message a worker', { pid: worker.process.pid, error: errorText(err) });
    }
  }

  // Bursts of Admin API writes fire onChange per write; workers only need the
  // latest snapshot, so sends are coalesced to one per event-loop turn.
  #scheduleBroadcast(): void {
    if (this.#broadcastScheduled) return;
    this.#broadcastScheduled = true;
    setImmediate(() => {
      this.#broadcastScheduled = false;
      if (!this.#store) return;
      const snapshot = this.#store.snapshot();
      for (const record of this.#workers.values()) {
        if (record.state !== 'draining') this.#send(record.worker, { type: 'config', snapshot });
      }
      this.#scheduleStatus();
    });
  }

  /** Drain one worker and wait for it to exit (killed after the drain timeout plus grace). */
  #drainWorker(record: WorkerRecord, timeoutMs: number): Promise<void> {
    record.state = 'draining';
    const { worker } = record;
    if (worker.isDead()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        log.warn('worker did not drain in time; killing it', { pid: worker.process.pid });
        worker.process.kill('SIGKILL');
      }, timeoutMs + DRAIN_GRACE_MS);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#send(worker, { type: 'drain', timeoutMs });
    });
  }

  /**
   * Re-read config.yaml and roll the workers over one at a time: start the
   * new one, wait until it listens, then drain the old one, so the listening
   * socket is never without an acceptor.
   */
  reload(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    // Overlapping reloads run one after the other.
    const previous = this.#reloading ?? Promise.resolve();
    const next = previous.then(() => this.#reload());
    this.#reloading = next.finally(() => {
      if (this.#reloading === next) this.#reloading = undefined;
    });
    return next;
  }

  async #reload(): Promise<void> {
    let fresh: PalisadeConfig;
    try {
      fresh = this.#options.reloadConfig();
    } catch (err) {
      log.error('reload aborted: the configuration is invalid; keeping the running one', { error: errorText(err) });
      return;
    }
    const old = this.#config;
    if (
      fresh.store.type !== old.store.type ||
      fresh.store.dataDir !== old.store.dataDir ||
      fresh.store.standaloneFile !== old.store.standaloneFile
    ) {
      log.warn('store settings changed; they take effect on the next start, not on reload');
      fresh.store = old.store;
    }
    this.#config = fresh;
    setLogLevel(fresh.log.level);

    if (JSON.stringify(fresh.admin) !== JSON.stringify(old.admin)) {
      try {
        await this.#admin?.close();
        await this.#startAdmin();
      } catch (err) {
        log.error('Admin API failed to restart with the new settings', { error: errorText(err) });
      }
    }

    const settings = workerSettings(fresh);
    const current = [...this.#workers.values()].filter((r) => r.state !== 'draining');
    let started = 0;
    for (const old of current) {
      if (this.#stopping) return;
      if (started < fresh.workers) {
        try {
          await this.#startWorker(settings);
        } catch (err) {
          log.error('reload stopped: a new worker failed to start; old workers keep serving', {
            error: errorText(err),
          });
          this.#writeStatus();
          return;
        }
        started += 1;
      }
      await this.#drainWorker(old, fresh.proxy.drainTimeoutMs);
    }
    while (started < fresh.workers && !this.#stopping) {
      await this.#startWorker(settings);
      started += 1;
    }
    log.info('reloaded', { workers: fresh.workers, proxy: this.#proxyAddresses() });
    this.#writeStatus();
  }

  /** Stop accepting, let in-flight requests finish, close the store, remove the pid file. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    log.info('stopping: draining in-flight requests', { drainTimeoutMs: this.#config.proxy.drainTimeoutMs });
    const admin = this.#admin?.close().catch((err: unknown) => {
      log.warn('Admin API close failed', { error: errorText(err) });
    });
    await Promise.all(
      [...this.#workers.values()].map((record) => this.#drainWorker(record, this.#config.proxy.drainTimeoutMs)),
    );
    await admin;
    this.#unsubscribe?.();
    await this.#store?.close();
    clearTimeout(this.#statusTimer);
    removeRuntimeFiles(this.#config.store.dataDir, process.pid);
    log.info('stopped');
  }

  #proxyAddresses(): string[] {
    const addresses = new Set<string>();
    for (const record of this.#workers.values()) {
      if (record.state === 'ready') for (const address of record.addresses) addresses.add(address);
    }
    return [...addresses];
  }

  status(): GatewayStatus {
    const ready = [...this.#workers.values()].filter((r) => r.state === 'ready');
    return {
      pid: process.pid,
      startedAt: this.#startedAt,
      updatedAt: new Date().toISOString(),
      configPath: this.#config.configPath,
      storeType: this.#config.store.type,
      dataDir: this.#config.store.dataDir,
      proxy: this.#proxyAddresses(),
      admin: this.#adminAddress,
      backend: ready[0]?.backend,
      configVersion: this.#store?.snapshot().version ?? -1,
      workers: ready.map((r) => ({ pid: r.worker.process.pid, backend: r.backend, appliedVersion: r.appliedVersion })),
    };
  }

  #scheduleStatus(): void {
    if (this.#statusTimer || this.#stopping) return;
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      this.#writeStatus();
    }, STATUS_WRITE_DELAY_MS);
    this.#statusTimer.unref();
  }

  #writeStatus(): void {
    if (this.#stopping) return;
    try {
      writeStatusFile(this.#config.store.dataDir, this.status());
    } catch (err) {
      log.warn('could not write the status file', { error: errorText(err) });
    }
  }
}
