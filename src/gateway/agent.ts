// The privileged agent: one more cluster child of the primary that serves no
// traffic. It owns
//   - the config-source watch when the source is etcd: it opens the etcd store
//     read-only, sends the whole configuration to the primary once and then
//     only what changed; the primary relays it to the workers (cluster IPC
//     only runs between the primary and each child);
//   - active health checks (src/health), fed with every configuration and
//     queried by the primary for the control API;
//   - periodic jobs (expired entries swept out of the shared dictionaries);
//   - its own plugin registry, reloaded with the workers', for plugin work
//     done off the request path;
//   - the prometheus metrics listener: every worker ships what its prometheus
//     plugin counted (relayed by the primary); the agent's metrics exporter (a
//     nice-19 process in a session of its own, see
//     src/plugins/lib/metrics-exporter.ts) merges it with the gauges the agent
//     reads (etcd reachable, upstream health, shared dicts) and renders it, so
//     a scrape never reaches a worker nor competes with one for a core.
// With the embedded or standalone store the primary is the source and sends
// the agent the configuration as it sends it to the workers.
//
// If the agent dies, workers keep serving their last configuration and the
// primary starts a new agent, which begins again with a full snapshot.

import { HEALTHCHECK_DICT } from '../config/defaults';
import { errorText } from '../core/errors';
import { logger, setLogLevel } from '../core/log';
import { startActiveHealthChecks, type HealthChecker } from '../health';
import { selectBackend } from '../native';
import type { SharedDict } from '../native/shdict';
import type { UpstreamNodeStatus } from '../plugins/lib/metrics';
import { startMetricsExporter, type MetricsExporter } from '../plugins/lib/metrics-exporter';
import { PluginLoader } from '../plugins/loader';
import { createEtcdStore, type EtcdStore } from '../store';
import type { ConfigSnapshot } from '../store/types';
import { ConfigMirror } from './config-mirror';
import {
  isPrimaryMessage,
  type AgentMessage,
  type AgentMetricsSettings,
  type AgentSettings,
  type PrimaryMessage,
} from './messages';
import { openSharedDicts } from './shared-dicts';

const log = logger('agent');

/** How often expired shared-dict entries are swept out. */
const SWEEP_INTERVAL_MS = 10_000;
/** At most this many expired entries per dictionary per sweep, so one sweep never holds a lock long. */
const SWEEP_BATCH = 1000;
/** How often the gauges the agent owns (etcd reachable, upstream health, shared dicts) are refreshed. */
const GAUGE_INTERVAL_MS = 5_000;

/** APISIX names an upstream in apisix_upstream_status by the key of what holds it: /apisix/routes/1, /apisix/upstreams/1. */
function upstreamMetricName(healthId: string): string {
  if (healthId.startsWith('route:')) return `/apisix/routes/${healthId.slice('route:'.length)}`;
  if (healthId.startsWith('service:')) return `/apisix/services/${healthId.slice('service:'.length)}`;
  return `/apisix/upstreams/${healthId}`;
}

function send(message: AgentMessage): void {
  if (process.send && process.connected) process.send(message);
}

export function runAgent(): void {
  const mirror = new ConfigMirror();
  let dicts = new Map<string, SharedDict>();
  let health: HealthChecker | undefined;
  let store: EtcdStore | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let plugins: PluginLoader | undefined;
  let metrics: MetricsExporter | undefined;
  let gaugeTimer: NodeJS.Timeout | undefined;
  let stopping = false;

  // Gauges read from what the agent holds anyway; cheap, so a timer rather than a hook per change.
  const refreshGauges = (): void => {
    if (metrics === undefined) return;
    const sharedDicts: Array<{ name: string; capacity: number; free: number }> = [];
    for (const dict of dicts.values()) {
      try {
        const stats = dict.stats();
        sharedDicts.push({ name: dict.name, capacity: stats.capacity, free: stats.capacity - stats.used });
      } catch (err) {
        log.warn('reading shared dict stats failed', { dict: dict.name, error: errorText(err) });
      }
    }
    // Every checked node as of now, so the nodes of a deleted upstream leave apisix_upstream_status.
    let upstreams: UpstreamNodeStatus[] | undefined = [];
    try {
      for (const upstream of health?.status().upstreams ?? []) {
        for (const node of upstream.nodes) {
          const colon = node.node.lastIndexOf(':');
          const ip = node.node.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
          upstreams.push({
            name: upstreamMetricName(upstream.id),
            ip,
            port: Number(node.node.slice(colon + 1)),
            healthy: node.healthy,
          });
        }
      }
    } catch (err) {
      upstreams = undefined;
      log.warn('reading upstream health for metrics failed', { error: errorText(err) });
    }
    metrics.setGauges({ etcdReachable: store?.reachable, upstreams, sharedDicts });
  };

  const startMetrics = async (settings: AgentMetricsSettings, exporter: MetricsExporter): Promise<void> => {
    try {
      const port = await exporter.listening;
      log.info('prometheus metrics listening', { address: `${settings.host}:${port}${settings.path}` });
    } catch (err) {
      // The gateway runs on without the listener; the deltas are still merged (cheap) in case of a later restart.
      log.error('prometheus metrics listener failed to start', {
        address: `${settings.host}:${settings.port}`,
        error: errorText(err),
      });
    }
    refreshGauges();
    gaugeTimer = setInterval(refreshGauges, GAUGE_INTERVAL_MS);
    gaugeTimer.unref();
  };

  const feedHealthChecks = (): void => {
    if (!health || mirror.version < 0) return;
    try {
      health.update(mirror.snapshot());
    } catch (err) {
      log.error('health checks rejected a configuration', { version: mirror.version, error: errorText(err) });
    }
  };

  // The agent as configuration source: every store change goes out as a delta.
  const watchEtcd = async (settings: AgentSettings): Promise<void> => {
    const etcd = settings.etcd!;
    const source = createEtcdStore({
      hosts: etcd.hosts,
      prefix: etcd.prefix,
      requestTimeoutMs: etcd.timeoutMs,
      username: etcd.user,
      password: etcd.password,
      readOnly: true,
    });
    await source.open();
    store = source;
    mirror.replace(source.snapshot());
    send({ type: 'source-snapshot', snapshot: mirror.snapshot() });
    source.onChange((snapshot) => {
      const delta = mirror.replace(snapshot);
      if (delta.changes.length === 0 && delta.fromVersion === delta.version) return;
      send({ type: 'source-delta', delta });
      feedHealthChecks();
    });
  };

  const sweep = (): void => {
    for (const dict of dicts.values()) {
      try {
        dict.flushExpired(SWEEP_BATCH);
      } catch (err) {
        log.warn('sweeping a shared dict failed', { dict: dict.name, error: errorText(err) });
      }
    }
  };

  const start = async (settings: AgentSettings, snapshot: ConfigSnapshot | undefined): Promise<void> => {
    setLogLevel(settings.logLevel);
    const backend = selectBackend(settings.backend, (message) => log.warn(message));
    dicts = openSharedDicts(backend, settings.sharedDicts);
    plugins = new PluginLoader(settings.plugins);
    // Created before the first await, so worker shipments that arrive while starting are merged.
    if (settings.metrics !== undefined) metrics = startMetricsExporter(settings.metrics);
    if (snapshot !== undefined) mirror.replace(snapshot);
    if (settings.etcd !== undefined) await watchEtcd(settings);

    const healthDict = dicts.get(HEALTHCHECK_DICT);
    if (healthDict !== undefined) {
      health = startActiveHealthChecks({ dict: healthDict, log: logger('health') });
      feedHealthChecks();
    }

    sweepTimer = setInterval(sweep, SWEEP_INTERVAL_MS);
    sweepTimer.unref();
    if (settings.metrics !== undefined && metrics !== undefined) await startMetrics(settings.metrics, metrics);
    send({ type: 'agent-ready', backend: backend.name, healthChecks: health !== undefined });
    // Nothing in the agent needs plugins to be ready: load them after answering, so a restart stays quick.
    plugins.load();
  };

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(sweepTimer);
    clearInterval(gaugeTimer);
    try {
      await metrics?.close();
      await health?.stop();
      await store?.close();
    } catch (err) {
      log.error('error while stopping', { error: errorText(err) });
    }
    for (const dict of dicts.values()) dict.close();
    process.exit(0);
  };

  const answerHealthQuery = (id: number): void => {
    if (!health) {
      send({ type: 'health-report', id, report: null });
      return;
    }
    try {
      send({ type: 'health-report', id, report: health.status() });
    } catch (err) {
      send({ type: 'health-report', id, report: null, error: errorText(err) });
    }
  };

  process.on('message', (raw: unknown) => {
    if (!isPrimaryMessage(raw)) return;
    const message: PrimaryMessage = raw;
    switch (message.type) {
      case 'agent-start':
        start(message.settings, message.snapshot).catch((err: unknown) => {
          log.error('agent failed to start', { error: errorText(err) });
          send({ type: 'start-failed', error: errorText(err) });
          process.exit(1);
        });
        break;
      case 'config':
        mirror.replace(message.snapshot);
        feedHealthChecks();
        break;
      case 'config-delta':
        // The primary is the source here; after a gap it sends the whole configuration.
        if (mirror.apply(message.delta)) feedHealthChecks();
        else send({ type: 'resync', version: mirror.version });
        break;
      case 'resync':
        if (store) send({ type: 'source-snapshot', snapshot: mirror.snapshot() });
        break;
      case 'health-query':
        answerHealthQuery(message.id);
        break;
      case 'metrics':
        metrics?.apply(message.delta);
        break;
      case 'plugins-reload': {
        let failed: Array<{ file: string; error: string }>;
        try {
          failed = plugins ? plugins.reload(message.plugins).failed : [];
        } catch (err) {
          log.error('plugin reload failed; keeping the loaded plugins', { error: errorText(err) });
          failed = [{ file: message.plugins.pluginDir ?? '', error: errorText(err) }];
        }
        send({ type: 'plugins-reloaded', id: message.id, version: plugins?.registry.version ?? 0, failed });
        break;
      }
      case 'drain':
        void stop();
        break;
      default:
        break;
    }
  });

  // Signals from a terminal reach the whole process group; the primary decides when the agent stops.
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('SIGTERM', () => void stop());
}
