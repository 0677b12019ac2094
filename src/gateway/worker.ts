// A data-plane worker process: receives its settings and the config snapshot
// from the primary over IPC, serves traffic with a DataPlane, keeps its own
// copy of the configuration up to date from the deltas the primary sends,
// swaps in every new version, and drains on request (or on SIGTERM/SIGINT
// from a terminal). Nothing here depends on the agent: when it is gone the
// worker keeps serving the last configuration it applied.

import { HEALTHCHECK_DICT } from '../config/defaults';
import { errorText } from '../core/errors';
import { logger, setLogLevel } from '../core/log';
import { DataPlane, type DataPlaneOptions } from '../dataplane/server';
import { selectBackend } from '../native';
import type { SharedDict } from '../native/shdict';
import type { ChainEnvironment, PluginRuntime } from '../plugins/chain';
import { startMetricsShipping, workerMetrics } from '../plugins/lib/metrics';
import { PluginLoader } from '../plugins/loader';
import type { ConfigSnapshot } from '../store/types';
import { ConfigMirror } from './config-mirror';
import { isPrimaryMessage, type PrimaryMessage, type WorkerMessage, type WorkerSettings } from './messages';
import { openSharedDicts } from './shared-dicts';

const log = logger('worker');

function send(message: WorkerMessage): void {
  if (process.send && process.connected) process.send(message);
}

/** Send, resolving once the message left for the primary (or could not): exit may follow right after. */
function sendAndFlush(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

let dicts = new Map<string, SharedDict>();

/** The shared dictionaries of this worker, by name (for plugins). */
export function workerSharedDicts(): ReadonlyMap<string, SharedDict> {
  return dicts;
}

/** How often a worker ships what its prometheus plugin counted (nothing is sent when nothing was counted). */
const METRICS_SHIP_INTERVAL_MS = 1000;

/** Plugins see the worker's shared dictionaries by name. */
const pluginEnvironment: ChainEnvironment = {
  dict(name: string): SharedDict {
    const dict = dicts.get(name);
    if (dict === undefined)
      throw new Error(`no such shared dictionary: ${name} (add it to shared_dicts in config.yaml)`);
    return dict;
  },
};

export function runWorker(): void {
  let dataPlane: DataPlane | undefined;
  let plugins: PluginLoader | undefined;
  const mirror = new ConfigMirror();
  let draining = false;
  let drainTimeoutMs = 30_000;
  let resyncAsked = false;
  let stopMetricsShipping: (() => void) | undefined;
  let lastMetricsShipment: Promise<void> = Promise.resolve();

  // A snapshot that fails to compile is logged and the old route table stays.
  const apply = (snapshot: ConfigSnapshot): void => {
    if (!dataPlane) return;
    try {
      const started = performance.now();
      dataPlane.applyConfig(snapshot);
      // The prometheus plugin labels series with the matched route's uri and host from this version.
      workerMetrics().useConfig(snapshot);
      send({ type: 'applied', version: snapshot.version, applyMs: performance.now() - started });
    } catch (err) {
      log.error('config rejected; keeping the previous route table', {
        version: snapshot.version,
        error: errorText(err),
      });
      send({ type: 'apply-failed', version: snapshot.version, error: errorText(err) });
    }
  };

  // Deltas that arrive together (a burst of Admin API writes) are compiled once:
  // with 10,000 routes one compile takes tens of ms, so compiling per delta falls behind.
  let applyScheduled = false;
  const scheduleApply = (): void => {
    if (applyScheduled) return;
    applyScheduled = true;
    setImmediate(() => {
      applyScheduled = false;
      apply(mirror.snapshot());
    });
  };

  const start = async (settings: WorkerSettings, snapshot: ConfigSnapshot): Promise<void> => {
    setLogLevel(settings.logLevel);
    drainTimeoutMs = settings.drainTimeoutMs;
    const backend = selectBackend(settings.backend, (message) => log.warn(message));
    dicts = openSharedDicts(backend, settings.sharedDicts);
    const loader = new PluginLoader(settings.plugins);
    loader.load();
    plugins = loader;
    // The getter makes every compile use the registry of the latest reload.
    const runtime: PluginRuntime = {
      get registry() {
        return loader.registry;
      },
      env: pluginEnvironment,
    };
    // proxy.limits also carries plugin_release_grace, which the data plane takes as its own option.
    const { pluginReleaseGraceMs, ...limits } = settings.limits;
    const options: DataPlaneOptions = {
      listen: settings.listen,
      limits,
      releaseGraceMs: pluginReleaseGraceMs,
      // The agent's active checks and every worker's passive reports meet in this dictionary.
      sharedDict: dicts.get(HEALTHCHECK_DICT),
      plugins: runtime,
      dicts,
      offload: settings.offload,
    };
    const plane = new DataPlane(backend, options);
    dataPlane = plane;
    // Synchronous up to listen(), so no delta is handled before this first snapshot.
    mirror.replace(snapshot);
    apply(mirror.snapshot());
    const addresses = await plane.listen();
    send({ type: 'listening', addresses, backend: backend.name });
    stopMetricsShipping = startMetricsShipping((delta) => {
      lastMetricsShipment = sendAndFlush({ type: 'metrics', delta });
    }, METRICS_SHIP_INTERVAL_MS);
  };

  // New chains are compiled against the new registry and swapped in; requests
  // already running keep the chain (and so the module code) they started with.
  const reloadPlugins = (id: number, settings: WorkerSettings['plugins']): void => {
    if (!plugins) return;
    const before = plugins.registry.version;
    let failed: Array<{ file: string; error: string }>;
    try {
      failed = plugins.reload(settings).failed;
    } catch (err) {
      log.error('plugin reload failed; keeping the loaded plugins', { error: errorText(err) });
      failed = [{ file: settings.pluginDir ?? '', error: errorText(err) }];
    }
    if (plugins.registry.version !== before && mirror.version >= 0) apply(mirror.snapshot());
    send({ type: 'plugins-reloaded', id, version: plugins.registry.version, failed });
  };

  const drain = async (timeoutMs: number): Promise<void> => {
    if (draining) return;
    draining = true;
    try {
      if (dataPlane) await dataPlane.close(timeoutMs);
    } catch (err) {
      log.error('error while draining', { error: errorText(err) });
    }
    // The last requests' counts go out before the worker exits (bounded: a gone primary must not hold the exit).
    stopMetricsShipping?.();
    await Promise.race([lastMetricsShipment, new Promise((resolve) => setTimeout(resolve, 500))]);
    for (const dict of dicts.values()) dict.close();
    process.exit(0);
  };

  process.on('message', (raw: unknown) => {
    if (!isPrimaryMessage(raw)) return;
    const message: PrimaryMessage = raw;
    switch (message.type) {
      case 'start':
        start(message.settings, message.snapshot).catch((err: unknown) => {
          log.error('data plane failed to start', { error: errorText(err) });
          send({ type: 'start-failed', error: errorText(err) });
          process.exit(1);
        });
        break;
      case 'config':
        resyncAsked = false;
        mirror.replace(message.snapshot);
        apply(mirror.snapshot());
        break;
      case 'config-delta':
        if (mirror.apply(message.delta)) {
          scheduleApply();
        } else if (!resyncAsked) {
          // Missed a version (or the primary's view was replaced): ask for everything once.
          resyncAsked = true;
          send({ type: 'resync', version: mirror.version });
        }
        break;
      case 'plugins-reload':
        reloadPlugins(message.id, message.plugins);
        break;
      case 'metrics-rename':
        workerMetrics().renameAll();
        break;
      case 'drain':
        void drain(message.timeoutMs);
        break;
      default:
        break;
    }
  });

  // Ctrl-C reaches the whole process group, and the primary then sends a drain
  // message too: either way the worker drains once.
  const onSignal = (): void => void drain(drainTimeoutMs);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => undefined);
}
