// The primary process: opens the config store and the Admin API (as the
// deployment role asks), runs N data-plane workers and one privileged agent
// through node:cluster, distributes every config change to them, replaces
// crashed children, rolls workers over on reload, and drains them on stop. It
// never serves proxy traffic itself, so a config that fails to compile in a
// worker cannot take it down.
//
// Where configuration comes from:
//   embedded / standalone store: the primary's store; the primary sends each
//     change (as a delta) to the workers and the agent.
//   etcd: the agent watches etcd and sends the primary what changed; the
//     primary relays it to the workers. The primary's own etcd store only
//     serves the Admin API (writes go straight to etcd and come back through
//     the agent's watch like anyone else's).
// Either way the primary keeps the distributed configuration in a
// ConfigMirror, so a worker started while the agent is down gets the last
// configuration, and workers keep serving it.
//
// Roles: traditional = proxy + Admin API; data_plane = proxy only (no Admin
// API, the store is read-only); control_plane = Admin API only (no workers,
// no agent).

import cluster, { type Worker } from 'node:cluster';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminServer } from '../admin/server';
import { resolveAdminKeys } from '../config/admin-key';
import { formatAddress } from '../config/format';
import type { PalisadeConfig } from '../config/types';
import { errorText } from '../core/errors';
import { logger, setLogLevel } from '../core/log';
import { selectBackend } from '../native';
import type { BackendName } from '../native/backend';
import { RegistryCatalog } from '../plugins/catalog';
import { PluginLoader, type PluginSettings } from '../plugins/loader';
import type { ConfigSnapshot, ConfigStore } from '../store/types';
import { forkChild, sendToChild } from './children';
import { ConfigMirror, type ConfigDelta } from './config-mirror';
import { ControlServer, type ProcessesReport } from './control';
import {
  AGENT_ENV,
  AGENT_ENV_VALUE,
  isAgentMessage,
  isWorkerMessage,
  type AgentMessage,
  type AgentMetricsSettings,
  type AgentSettings,
  type PluginsReloaded,
  type PrimaryMessage,
  type SharedDictSetting,
  type WorkerMessage,
  type WorkerSettings,
} from './messages';
import { type GatewayStatus, removeRuntimeFiles, runningPid, writePidFile, writeStatusFile } from './runtime-files';
import { createSharedDicts, removeSharedDicts, sharedDictSettings } from './shared-dicts';
import { agentIsSource, createConfigStore } from './store';

const log = logger('primary');

// By default (SCHED_RR) the primary accepts every connection and hands it to a
// worker over IPC, which puts the primary on the hot path and adds a hop per
// connection. SCHED_NONE shares the listening socket so each worker accepts
// directly and the kernel spreads connections. Must be set before any fork.
cluster.schedulingPolicy = cluster.SCHED_NONE;

/** How long a worker or the agent may take from fork to ready. */
const CHILD_START_TIMEOUT_MS = 15_000;
/** Grace on top of the drain timeout before a worker is killed. */
const DRAIN_GRACE_MS = 5_000;
/** How long the agent may take to stop before it is killed. */
const AGENT_STOP_TIMEOUT_MS = 5_000;
const STATUS_WRITE_DELAY_MS = 50;
/** The least time between two config deltas sent to the children (a burst of writes is batched). */
const BROADCAST_INTERVAL_MS = 10;
const HEALTH_QUERY_TIMEOUT_MS = 3_000;
/** Crashes within this window count towards the restart backoff. */
const CRASH_WINDOW_MS = 30_000;
const MAX_RESTART_DELAY_MS = 5_000;
/** How long PUT /plugins/reload waits for every worker and the agent to confirm. */
const PLUGINS_RELOAD_TIMEOUT_MS = 10_000;

type ChildState = 'starting' | 'ready' | 'draining';

interface WorkerRecord {
  worker: Worker;
  settings: WorkerSettings;
  state: ChildState;
  backend: BackendName | undefined;
  appliedVersion: number;
  /** How long the last apply took in the worker. */
  lastApplyMs: number;
  addresses: string[];
}

interface AgentRecord {
  worker: Worker;
  state: ChildState;
  healthChecks: boolean;
}

interface PendingHealthQuery {
  resolve(report: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface PluginsReloadWaiter {
  /** Children that have not answered yet. */
  pending: Set<Worker>;
  resolve(): void;
  timer: NodeJS.Timeout;
}

interface AppliedWaiter {
  version: number;
  resolve(applied: boolean): void;
  timer: NodeJS.Timeout;
}

export interface PrimaryOptions {
  /** Re-reads config.yaml for `palisade reload` / SIGHUP. */
  reloadConfig: () => PalisadeConfig;
  /** Where the one-time "generated admin key" line goes (stdout). */
  announce?: (line: string) => void;
}

function pluginSettings(config: PalisadeConfig): PluginSettings {
  return { enabled: config.plugins.enabled, pluginDir: config.plugins.dir, serverless: config.plugins.serverless };
}

/** A forked child's start: settled once, by its ready message, a failure, or silence past the timeout. */
interface StartHandshake {
  readonly settled: boolean;
  ready(): void;
  /** Kill the child (its record marked draining: a failed start is not a crash to restart) and reject. */
  fail(reason: string): void;
}

function startHandshake(
  label: string,
  record: { worker: Worker; state: ChildState },
  resolve: () => void,
  reject: (err: Error) => void,
): StartHandshake {
  let settled = false;
  const handshake: StartHandshake = {
    get settled() {
      return settled;
    },
    ready() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve();
    },
    fail(reason) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      record.state = 'draining';
      record.worker.process.kill('SIGKILL');
      reject(new Error(`${label} failed to start: ${reason}`));
    },
  };
  const timer = setTimeout(
    () => handshake.fail(`no answer within ${CHILD_START_TIMEOUT_MS} ms`),
    CHILD_START_TIMEOUT_MS,
  );
  return handshake;
}

function workerSettings(
  config: PalisadeConfig,
  sharedDicts: SharedDictSetting[],
  plugins: PluginSettings,
): WorkerSettings {
  return {
    listen: config.proxy.listen,
    limits: config.proxy.limits,
    backend: config.native.backend,
    logLevel: config.log.level,
    drainTimeoutMs: config.proxy.drainTimeoutMs,
    sharedDicts,
    plugins,
    offload: config.offload,
  };
}

function agentSettings(
  config: PalisadeConfig,
  sharedDicts: SharedDictSetting[],
  plugins: PluginSettings,
): AgentSettings {
  return {
    backend: config.native.backend,
    logLevel: config.log.level,
    sharedDicts,
    etcd: agentIsSource(config) ? config.store.etcd : undefined,
    plugins,
    metrics: agentMetricsSettings(config),
  };
}

/** The metrics listener runs when plugin_attr.prometheus leaves it on and the prometheus plugin is loaded. */
function agentMetricsSettings(config: PalisadeConfig): AgentMetricsSettings | undefined {
  const prometheus = config.prometheus;
  if (prometheus === undefined || config.deployment.role === 'control_plane') return undefined;
  const enabled = config.plugins.enabled;
  if (enabled !== undefined && !enabled.includes('prometheus')) return undefined;
  return {
    host: prometheus.exportAddr.host,
    port: prometheus.exportAddr.port,
    path: prometheus.exportUri,
    prefix: prometheus.metricPrefix,
    refreshIntervalMs: prometheus.refreshIntervalMs,
  };
}

/** Restart delay after the latest crash: 100 ms doubling per crash in the window, at most 5 s. */
function restartDelay(crashes: number[]): number {
  const now = Date.now();
  const recent = crashes.filter((t) => now - t < CRASH_WINDOW_MS);
  recent.push(now);
  crashes.splice(0, crashes.length, ...recent);
  return Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (recent.length - 1));
}

export class Primary {
  #config: PalisadeConfig;
  readonly #options: PrimaryOptions;
  readonly #startedAt = new Date().toISOString();
  #store: ConfigStore | undefined;
  #admin: AdminServer | undefined;
  #adminAddress: string | undefined;
  #control: ControlServer | undefined;
  #controlAddress: string | undefined;
  /** The configuration as distributed to the children. */
  readonly #mirror = new ConfigMirror();
  readonly #workers = new Map<number, WorkerRecord>();
  #agent: AgentRecord | undefined;
  #sharedDicts: SharedDictSetting[] = [];
  #stopping = false;
  #reloading: Promise<void> | undefined;
  #broadcastScheduled = false;
  #lastBroadcastAt = -Infinity;
  #statusTimer: NodeJS.Timeout | undefined;
  readonly #workerCrashes: number[] = [];
  readonly #agentCrashes: number[] = [];
  #unsubscribe: (() => void) | undefined;
  #nextQueryId = 1;
  readonly #healthQueries = new Map<number, PendingHealthQuery>();
  #appliedWaiters: AppliedWaiter[] = [];
  /** The plugins as the Admin API validates against them; workers and the agent load their own copies. */
  readonly #plugins: PluginLoader;
  readonly #pluginsReloads = new Map<number, PluginsReloadWaiter>();
  /** Resolves when the agent, as configuration source, delivered its first snapshot. */
  #firstSourceSnapshot: (() => void) | undefined;

  constructor(config: PalisadeConfig, options: PrimaryOptions) {
    this.#config = config;
    this.#options = options;
    this.#plugins = new PluginLoader(pluginSettings(config));
  }

  get config(): PalisadeConfig {
    return this.#config;
  }

  /** Open the store, start the Admin API, the agent and the workers, write the pid file. */
  async start(): Promise<void> {
    const config = this.#config;
    const { dataDir } = config.store;
    const { role } = config.deployment;
    setLogLevel(config.log.level);
    fs.mkdirSync(dataDir, { recursive: true });
    const other = runningPid(dataDir);
    if (other !== undefined && other !== process.pid) {
      throw new Error(`already running (pid ${other}, data dir ${dataDir})`);
    }
    writePidFile(dataDir, process.pid);
    this.#plugins.load();

    cluster.setupPrimary({ exec: path.join(__dirname, 'worker-main.js') });

    const runsDataPlane = role !== 'control_plane';
    if (runsDataPlane) {
      this.#sharedDicts = sharedDictSettings(config.sharedDicts, dataDir);
      createSharedDicts(
        selectBackend(config.native.backend, (message) => log.warn(message)),
        this.#sharedDicts,
      );
    }

    // A data plane on etcd needs no store here: the agent reads etcd.
    if (role !== 'data_plane' || !agentIsSource(config)) {
      const store = createConfigStore(config, log);
      await store.open();
      this.#store = store;
      if (!agentIsSource(config)) {
        this.#mirror.replace(store.snapshot());
        this.#unsubscribe = store.onChange(() => this.#scheduleBroadcast());
      }
    }

    if (role !== 'data_plane') await this.#startAdmin();
    await this.#startControl();

    if (runsDataPlane) {
      const sourceReady = agentIsSource(config)
        ? new Promise<void>((resolve) => (this.#firstSourceSnapshot = resolve))
        : Promise.resolve();
      await this.#startAgent();
      await sourceReady;
      const settings = workerSettings(config, this.#sharedDicts, this.#plugins.settings);
      await Promise.all(Array.from({ length: config.workers }, () => this.#startWorker(settings)));
    }
    log.info('gateway started', {
      pid: process.pid,
      role,
      store: config.store.type,
      proxy: this.#proxyAddresses(),
      admin: this.#adminAddress,
      control: this.#controlAddress,
      workers: runsDataPlane ? config.workers : 0,
      configVersion: this.#mirror.version,
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
      plugins: new RegistryCatalog(() => this.#plugins.registry),
      reloadPlugins: () => this.reloadPlugins(),
      uploadPlugin: this.#config.plugins.upload ? (name, source) => this.#uploadPlugin(name, source) : undefined,
    });
    const bound = await server.listen();
    this.#admin = server;
    this.#adminAddress = formatAddress({ host: bound.address, port: bound.port });
  }

  /** The control API is an aid, not a duty: a port already taken is logged and the gateway runs without it. */
  async #startControl(): Promise<void> {
    const control = this.#config.control;
    if (control === undefined) return;
    const server = new ControlServer({
      healthReport: () => this.#healthReport(),
      processes: () => this.#processes(),
      waitApplied: (version, timeoutMs) => this.#waitApplied(version, timeoutMs),
    });
    try {
      const bound = await server.listen(control.listen);
      this.#control = server;
      this.#controlAddress = formatAddress(bound);
    } catch (err) {
      log.error('the control API could not listen; running without it', {
        listen: formatAddress(control.listen),
        error: errorText(err),
      });
    }
  }

  // ---- the agent ----

  /** Fork the agent and resolve once it is ready (and, as source, has sent the configuration). */
  #startAgent(): Promise<void> {
    const worker = forkChild({ [AGENT_ENV]: AGENT_ENV_VALUE });
    const record: AgentRecord = { worker, state: 'starting', healthChecks: false };
    this.#agent = record;
    const settings = agentSettings(this.#config, this.#sharedDicts, this.#plugins.settings);

    return new Promise<void>((resolve, reject) => {
      const start = startHandshake('agent', record, () => resolve(), reject);

      worker.on('message', (raw: unknown) => {
        if (!isAgentMessage(raw)) return;
        const message: AgentMessage = raw;
        switch (message.type) {
          case 'agent-ready':
            record.healthChecks = message.healthChecks;
            if (record.state === 'starting') record.state = 'ready';
            start.ready();
            this.#scheduleStatus();
            break;
          case 'start-failed':
            start.fail(message.error);
            break;
          case 'source-snapshot':
            this.#distribute(this.#mirror.replace(message.snapshot));
            this.#firstSourceSnapshot?.();
            this.#firstSourceSnapshot = undefined;
            break;
          case 'source-delta':
            if (this.#mirror.apply(message.delta)) this.#distribute(message.delta);
            else this.#send(worker, { type: 'resync' });
            break;
          case 'health-report':
            this.#answerHealthQuery(message.id, message.report, message.error);
            break;
          case 'resync':
            this.#send(worker, { type: 'config', snapshot: this.#mirror.snapshot() });
            break;
          case 'plugins-reloaded':
            this.#pluginsReloaded(worker, message);
            break;
        }
      });
      worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#forgetPluginsReloads(worker);
        if (this.#agent === record) this.#agent = undefined;
        for (const [id, query] of this.#healthQueries) {
          clearTimeout(query.timer);
          query.reject(new Error('the agent exited before answering'));
          this.#healthQueries.delete(id);
        }
        if (!start.settled) start.fail(`exited (code ${code}, signal ${signal})`);
        else this.#onAgentExit(record, code, signal);
      });
      const snapshot = agentIsSource(this.#config) ? undefined : this.#mirror.snapshot();
      this.#send(worker, { type: 'agent-start', settings, snapshot });
    });
  }

  #onAgentExit(record: AgentRecord, code: number | null, signal: NodeJS.Signals | null): void {
    this.#scheduleStatus();
    if (record.state === 'draining' || this.#stopping) return;
    const delay = restartDelay(this.#agentCrashes);
    log.error('agent died; workers keep serving their configuration; starting a new agent', {
      pid: record.worker.process.pid,
      code,
      signal,
      restartInMs: delay,
    });
    setTimeout(() => {
      if (this.#stopping || this.#agent !== undefined) return;
      this.#startAgent().catch((err: unknown) => {
        log.error('the new agent failed to start', { error: errorText(err) });
        this.#onAgentExit(record, null, null);
      });
    }, delay).unref();
  }

  /** Ask the agent to stop and wait for it (killed after a few seconds). */
  #stopAgent(): Promise<void> {
    const record = this.#agent;
    if (record === undefined) return Promise.resolve();
    record.state = 'draining';
    this.#agent = undefined;
    const { worker } = record;
    if (worker.isDead()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), AGENT_STOP_TIMEOUT_MS);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#send(worker, { type: 'drain', timeoutMs: AGENT_STOP_TIMEOUT_MS });
    });
  }

  #healthReport(): Promise<unknown> {
    const agent = this.#agent;
    if (agent === undefined || agent.state !== 'ready') {
      return Promise.reject(new Error('the agent is not running (it is being restarted)'));
    }
    if (!agent.healthChecks) return Promise.resolve(null);
    const id = this.#nextQueryId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#healthQueries.delete(id);
        reject(new Error(`the agent did not answer within ${HEALTH_QUERY_TIMEOUT_MS} ms`));
      }, HEALTH_QUERY_TIMEOUT_MS);
      this.#healthQueries.set(id, { resolve, reject, timer });
      this.#send(agent.worker, { type: 'health-query', id });
    });
  }

  #answerHealthQuery(id: number, report: unknown, error: string | undefined): void {
    const query = this.#healthQueries.get(id);
    if (query === undefined) return;
    this.#healthQueries.delete(id);
    clearTimeout(query.timer);
    if (error !== undefined) query.reject(new Error(`health checks failed to report: ${error}`));
    else query.resolve(report);
  }

  // ---- workers ----

  /** Fork one worker and resolve once it listens; reject if it fails to. */
  #startWorker(settings: WorkerSettings): Promise<WorkerRecord> {
    const worker = forkChild();
    const record: WorkerRecord = {
      worker,
      settings,
      state: 'starting',
      backend: undefined,
      appliedVersion: -1,
      lastApplyMs: 0,
      addresses: [],
    };
    this.#workers.set(worker.id, record);

    return new Promise<WorkerRecord>((resolve, reject) => {
      const start = startHandshake('data-plane worker', record, () => resolve(record), reject);
      // The agent this worker's metrics went to, and whether one of its shipments found no agent.
      let metricsAgent: unknown;
      let metricsShipmentLost = false;

      worker.on('message', (raw: unknown) => {
        if (!isWorkerMessage(raw)) return;
        const message: WorkerMessage = raw;
        switch (message.type) {
          case 'listening':
            record.backend = message.backend;
            record.addresses = message.addresses.map((a) => formatAddress({ host: a.address, port: a.port }));
            if (record.state === 'starting') record.state = 'ready';
            start.ready();
            this.#scheduleStatus();
            break;
          case 'start-failed':
            start.fail(message.error);
            break;
          case 'applied':
            record.appliedVersion = message.version;
            record.lastApplyMs = message.applyMs;
            this.#checkAppliedWaiters();
            this.#scheduleStatus();
            break;
          case 'apply-failed':
            log.error('worker rejected a config; it keeps serving the previous one', {
              pid: worker.process.pid,
              version: message.version,
              error: message.error,
            });
            break;
          case 'resync':
            this.#send(worker, { type: 'config', snapshot: this.#mirror.snapshot() });
            break;
          case 'metrics':
            // The agent merges every worker's counts; without an agent (restarting) this shipment is lost.
            if (this.#agent !== undefined && this.#agent.state !== 'draining') {
              // Series ids are named once: an agent that missed the naming gets every name again.
              if (metricsAgent !== this.#agent.worker || metricsShipmentLost) {
                if (metricsAgent !== undefined || metricsShipmentLost) this.#send(worker, { type: 'metrics-rename' });
                metricsAgent = this.#agent.worker;
                metricsShipmentLost = false;
              }
              this.#send(this.#agent.worker, message);
            } else {
              metricsShipmentLost = true;
            }
            break;
          case 'plugins-reloaded':
            this.#pluginsReloaded(worker, message);
            break;
        }
      });
      worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#forgetPluginsReloads(worker);
        this.#workers.delete(worker.id);
        if (!start.settled) start.fail(`exited (code ${code}, signal ${signal})`);
        else this.#onWorkerExit(record, code, signal);
      });
      this.#send(worker, { type: 'start', settings, snapshot: this.#mirror.snapshot() });
    });
  }

  #onWorkerExit(record: WorkerRecord, code: number | null, signal: NodeJS.Signals | null): void {
    this.#scheduleStatus();
    if (record.state === 'draining' || this.#stopping) return;
    // A crash: replace it, backing off when workers keep dying.
    const delay = restartDelay(this.#workerCrashes);
    log.error('data-plane worker died; starting a replacement', {
      pid: record.worker.process.pid,
      code,
      signal,
      restartInMs: delay,
    });
    setTimeout(() => {
      if (this.#stopping) return;
      this.#startWorker(workerSettings(this.#config, this.#sharedDicts, this.#plugins.settings)).catch(
        (err: unknown) => {
          log.error('replacement worker failed to start', { error: errorText(err) });
          // The failed start is not respawned by itself; try again later.
          this.#onWorkerExit(record, null, null);
        },
      );
    }, delay).unref();
  }

  #send(worker: Worker, message: PrimaryMessage): void {
    sendToChild(worker, message);
  }

  // ---- distribution ----

  // Bursts of Admin API writes fire onChange per write; children only need the
  // latest state, so changes are coalesced to one delta per event-loop turn.
  #scheduleBroadcast(): void {
    if (this.#broadcastScheduled) return;
    this.#broadcastScheduled = true;
    const send = (): void => {
      this.#broadcastScheduled = false;
      this.#lastBroadcastAt = performance.now();
      if (this.#store) this.#distribute(this.#mirror.replace(this.#store.snapshot()));
    };
    // A lone change goes out at once. In a burst of Admin API writes (an import of
    // thousands of routes) at most one delta leaves per BROADCAST_INTERVAL_MS, so every
    // child rebuilds its route table once per batch instead of once per write.
    const waitMs = this.#lastBroadcastAt + BROADCAST_INTERVAL_MS - performance.now();
    if (waitMs > 0) setTimeout(send, waitMs);
    else setImmediate(send);
  }

  /** Send a delta the mirror has just taken to every worker (and to the agent when the primary is the source). */
  #distribute(delta: ConfigDelta): void {
    if (delta.changes.length === 0 && delta.fromVersion === delta.version) return;
    const message: PrimaryMessage = { type: 'config-delta', delta };
    for (const record of this.#workers.values()) {
      if (record.state !== 'draining') this.#send(record.worker, message);
    }
    if (this.#agent && this.#agent.state !== 'draining' && !agentIsSource(this.#config)) {
      this.#send(this.#agent.worker, message);
    }
    this.#checkAppliedWaiters();
    this.#scheduleStatus();
  }

  #liveWorkers(): WorkerRecord[] {
    return [...this.#workers.values()].filter((r) => r.state !== 'draining');
  }

  #waitApplied(version: number, timeoutMs: number): Promise<boolean> {
    if (this.#allApplied(version)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: AppliedWaiter = {
        version,
        resolve,
        timer: setTimeout(() => {
          this.#appliedWaiters = this.#appliedWaiters.filter((other) => other !== waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.#appliedWaiters.push(waiter);
    });
  }

  #allApplied(version: number): boolean {
    const live = this.#liveWorkers();
    return live.length > 0 && live.every((r) => r.appliedVersion >= version);
  }

  #checkAppliedWaiters(): void {
    if (this.#appliedWaiters.length === 0) return;
    this.#appliedWaiters = this.#appliedWaiters.filter((waiter) => {
      if (!this.#allApplied(waiter.version)) return true;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
      return false;
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

  // ---- plugins ----

  /**
   * PUT /apisix/admin/plugins/reload: take the plugin settings from a fresh
   * read of config.yaml (as APISIX re-reads its plugin list; the running ones
   * stay if the file is invalid), reload the Admin API's catalog, and tell
   * every worker and the agent to reload theirs. Resolves when all have
   * answered (or after a timeout): the next request is served by the new code.
   */
  async reloadPlugins(): Promise<void> {
    let settings = this.#plugins.settings;
    try {
      settings = pluginSettings(this.#options.reloadConfig());
    } catch (err) {
      log.error('config.yaml is invalid; reloading plugins with the running plugin settings', {
        error: errorText(err),
      });
    }
    log.info('start to hot reload plugins');
    this.#plugins.reload(settings);
    const children = this.#liveWorkers().map((record) => record.worker);
    if (this.#agent !== undefined && this.#agent.state !== 'draining') children.push(this.#agent.worker);
    if (children.length === 0) return;
    const id = this.#nextQueryId++;
    await new Promise<void>((resolve) => {
      const waiter: PluginsReloadWaiter = {
        pending: new Set(children),
        resolve,
        timer: setTimeout(() => {
          log.warn('not every process confirmed the plugin reload in time', {
            missing: [...waiter.pending].map((child) => child.process.pid),
          });
          this.#pluginsReloads.delete(id);
          resolve();
        }, PLUGINS_RELOAD_TIMEOUT_MS),
      };
      this.#pluginsReloads.set(id, waiter);
      for (const child of children) this.#send(child, { type: 'plugins-reload', id, plugins: settings });
    });
  }

  #pluginsReloaded(child: Worker, message: PluginsReloaded): void {
    for (const failure of message.failed) {
      log.error('a plugin failed to load', { pid: child.process.pid, file: failure.file, error: failure.error });
    }
    const waiter = this.#pluginsReloads.get(message.id);
    if (waiter === undefined) return;
    waiter.pending.delete(child);
    if (waiter.pending.size === 0) {
      clearTimeout(waiter.timer);
      this.#pluginsReloads.delete(message.id);
      waiter.resolve();
    }
  }

  /** A child that exits will not answer: stop waiting for it. */
  #forgetPluginsReloads(child: Worker): void {
    for (const [id, waiter] of this.#pluginsReloads) {
      if (!waiter.pending.delete(child) || waiter.pending.size > 0) continue;
      clearTimeout(waiter.timer);
      this.#pluginsReloads.delete(id);
      waiter.resolve();
    }
  }

  /** Install an uploaded plugin (checked in this process first), then reload everywhere. */
  async #uploadPlugin(name: string, source: string): Promise<string | undefined> {
    const err = this.#plugins.install(name, source);
    if (err !== undefined) return err;
    await this.reloadPlugins();
    return undefined;
  }

  // ---- reload and stop ----

  /**
   * Re-read config.yaml, replace the agent, and roll the workers over one at
   * a time: start the new one, wait until it listens, then drain the old one,
   * so the listening socket is never without an acceptor.
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
      JSON.stringify(fresh.store) !== JSON.stringify(old.store) ||
      fresh.deployment.role !== old.deployment.role ||
      JSON.stringify(fresh.sharedDicts) !== JSON.stringify(old.sharedDicts)
    ) {
      log.warn('store, deployment role and shared dict settings take effect on the next start, not on reload');
      fresh.store = old.store;
      fresh.deployment = old.deployment;
      fresh.sharedDicts = old.sharedDicts;
    }
    this.#config = fresh;
    setLogLevel(fresh.log.level);
    this.#plugins.reload(pluginSettings(fresh));

    if (fresh.deployment.role !== 'data_plane' && JSON.stringify(fresh.admin) !== JSON.stringify(old.admin)) {
      try {
        await this.#admin?.close();
        await this.#startAdmin();
      } catch (err) {
        log.error('Admin API failed to restart with the new settings', { error: errorText(err) });
      }
    }
    if (JSON.stringify(fresh.control) !== JSON.stringify(old.control)) {
      await this.#control?.close();
      this.#control = undefined;
      this.#controlAddress = undefined;
      await this.#startControl();
    }
    if (fresh.deployment.role === 'control_plane') {
      this.#writeStatus();
      return;
    }

    // The agent serves no traffic: stop it, then start it with the new settings.
    await this.#stopAgent();
    try {
      await this.#startAgent();
    } catch (err) {
      log.error('the agent failed to start after reload; retrying', { error: errorText(err) });
      this.#scheduleAgentRetry();
    }

    const settings = workerSettings(fresh, this.#sharedDicts, this.#plugins.settings);
    const current = this.#liveWorkers();
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

  #scheduleAgentRetry(): void {
    const delay = restartDelay(this.#agentCrashes);
    setTimeout(() => {
      if (this.#stopping || this.#agent !== undefined) return;
      this.#startAgent().catch((err: unknown) => {
        log.error('the agent failed to start', { error: errorText(err) });
        this.#scheduleAgentRetry();
      });
    }, delay).unref();
  }

  /** Stop accepting, let in-flight requests finish, stop the agent, close the store, remove the pid file. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    log.info('stopping: draining in-flight requests', { drainTimeoutMs: this.#config.proxy.drainTimeoutMs });
    const admin = this.#admin?.close().catch((err: unknown) => {
      log.warn('Admin API close failed', { error: errorText(err) });
    });
    await Promise.all([
      ...[...this.#workers.values()].map((record) => this.#drainWorker(record, this.#config.proxy.drainTimeoutMs)),
      this.#stopAgent(),
    ]);
    await admin;
    await this.#control?.close();
    for (const waiter of this.#appliedWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.#appliedWaiters = [];
    this.#unsubscribe?.();
    await this.#store?.close();
    clearTimeout(this.#statusTimer);
    removeSharedDicts(this.#sharedDicts);
    removeRuntimeFiles(this.#config.store.dataDir, process.pid);
    log.info('stopped');
  }

  // ---- status ----

  #proxyAddresses(): string[] {
    const addresses = new Set<string>();
    for (const record of this.#workers.values()) {
      if (record.state === 'ready') for (const address of record.addresses) addresses.add(address);
    }
    return [...addresses];
  }

  #processes(): ProcessesReport {
    const agent = this.#agent;
    return {
      configVersion: this.#mirror.version,
      workers: this.#liveWorkers().map((r) => ({
        pid: r.worker.process.pid,
        appliedVersion: r.appliedVersion,
        lastApplyMs: Math.round(r.lastApplyMs * 100) / 100,
      })),
      agent: agent === undefined ? undefined : { pid: agent.worker.process.pid, ready: agent.state === 'ready' },
    };
  }

  /** The current configuration as the children have it (for tests and embedding). */
  snapshot(): ConfigSnapshot {
    return this.#mirror.snapshot();
  }

  status(): GatewayStatus {
    const ready = [...this.#workers.values()].filter((r) => r.state === 'ready');
    const agent = this.#agent;
    return {
      pid: process.pid,
      startedAt: this.#startedAt,
      updatedAt: new Date().toISOString(),
      configPath: this.#config.configPath,
      role: this.#config.deployment.role,
      storeType: this.#config.store.type,
      dataDir: this.#config.store.dataDir,
      proxy: this.#proxyAddresses(),
      admin: this.#adminAddress,
      control: this.#controlAddress,
      backend: ready[0]?.backend,
      configVersion: this.#mirror.version,
      workers: ready.map((r) => ({ pid: r.worker.process.pid, backend: r.backend, appliedVersion: r.appliedVersion })),
      agent:
        agent === undefined
          ? undefined
          : { pid: agent.worker.process.pid, ready: agent.state === 'ready', healthChecks: agent.healthChecks },
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
