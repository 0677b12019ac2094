// The metrics exporter: a process of its own, forked by the agent, that
// merges the workers' deltas and serves the exposition text on the metrics
// listener. It runs under SCHED_IDLE (src/core/priority.ts), and at nice 19 in
// a session of its own where that policy is not available, so merging and
// rendering 10,000 routes' metrics (about 60 MB of text) only get a core the
// workers leave idle.
//
// Why a process and not a thread of the agent: on Linux with autogroup
// scheduling (sched_autogroup_enabled, the default on desktop and many
// server kernels) the scheduler first shares the CPU between sessions, and
// nice only orders the threads inside one. A nice-19 thread in the gateway's
// session still spends the session's share, so the workers beside it waited
// behind other sessions' work whenever a scrape rendered (measured: p99 over
// 10,000 routes went from 48 ms to 180-290 ms with a render thread, and
// stayed at the no-scrape figure with this process). A new session has its
// own autogroup, whose nice is set to 19 as well (/proc/self/autogroup).
//
// The agent's side (startMetricsExporter) sends deltas and gauges; nothing
// comes back but whether the listener started. The exporter exits when the
// agent goes (its IPC channel closes).

import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';

import { idleThisProcess } from '../../core/priority';

import {
  MetricsAggregator,
  startMetricsServer,
  type MetricsDelta,
  type MetricsServer,
  type UpstreamNodeStatus,
} from './metrics';

/** The lowest priority: the exporter runs when the workers leave a core idle. */
const EXPORTER_NICE = 19;

/** A port in use is tried again this many times, this far apart (the exporter of an agent that just died). */
const LISTEN_ATTEMPTS = 8;
const LISTEN_RETRY_MS = 250;

/** Set on the exporter's fork: its settings, as JSON. */
const EXPORTER_ENV = 'PALISADE_METRICS_EXPORTER';

export interface MetricsExporterSettings {
  host: string;
  port: number;
  path: string;
  prefix: string;
  /** plugin_attr.prometheus.refresh_interval: how long one rendering serves scrapes. */
  refreshIntervalMs: number;
}

/** Gauges the agent reads from what it holds; each field replaces that gauge's whole state. */
export interface MetricsGauges {
  /** Undefined without etcd: then apisix_etcd_reachable is not shown. */
  etcdReachable?: boolean;
  upstreams?: readonly UpstreamNodeStatus[];
  sharedDicts?: ReadonlyArray<{ name: string; capacity: number; free: number }>;
}

type ToExporter =
  { type: 'delta'; delta: MetricsDelta } | { type: 'gauges'; gauges: MetricsGauges } | { type: 'close' };

type FromExporter = { type: 'listening'; port: number } | { type: 'listen-failed'; error: string };

export interface MetricsExporter {
  /** The exporter's process id. */
  readonly pid: number | undefined;
  /** Resolves with the listener's port once it listens; rejects when it cannot (the exporter still merges). */
  readonly listening: Promise<number>;
  apply(delta: MetricsDelta): void;
  setGauges(gauges: MetricsGauges): void;
  /** Resolves once the exporter process has exited (killed after a second if it has not). */
  close(): Promise<void>;
}

/** Start the exporter process (in the agent). */
export function startMetricsExporter(settings: MetricsExporterSettings): MetricsExporter {
  const child = fork(__filename, [], {
    // A session (and so an autogroup) of its own; see the top of this file.
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [EXPORTER_ENV]: JSON.stringify(settings) },
  });
  // The agent exits by process.exit; the exporter must not hold it.
  child.unref();
  let closed: (() => void) | undefined;
  const listening = new Promise<number>((resolve, reject) => {
    child.on('message', (message: FromExporter) => {
      if (message.type === 'listening') resolve(message.port);
      else if (message.type === 'listen-failed') reject(new Error(message.error));
    });
    // on, not once: a later failed IPC write is an 'error' event too, and unhandled it would throw in the agent.
    child.on('error', reject);
    child.once('exit', () => {
      reject(new Error('the metrics exporter exited'));
      closed?.();
    });
  });
  // Not every caller awaits it (the agent logs a listener that failed).
  listening.catch(() => undefined);
  const send = (message: ToExporter): void => {
    // The callback takes a failed write (EPIPE from an exporter that just died) instead of an 'error' event.
    if (child.connected) child.send(message, (err) => void err);
  };
  return {
    pid: child.pid,
    listening,
    apply: (delta) => send({ type: 'delta', delta }),
    setGauges: (gauges) => send({ type: 'gauges', gauges }),
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 1000);
        closed = () => {
          clearTimeout(timer);
          resolve();
        };
        send({ type: 'close' });
      }),
  };
}

function runMetricsExporter(settings: MetricsExporterSettings): void {
  const reply = (message: FromExporter): void => void process.send?.(message);
  try {
    setPriority(EXPORTER_NICE);
    writeFileSync('/proc/self/autogroup', String(EXPORTER_NICE));
  } catch {
    // Not Linux, or no autogroup: the nice value of the process is what there is.
  }
  idleThisProcess();
  const aggregator = new MetricsAggregator({ prefix: settings.prefix });
  let server: MetricsServer | undefined;

  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: ToExporter) => {
    switch (message.type) {
      case 'delta':
        aggregator.apply(message.delta);
        break;
      case 'gauges': {
        const { etcdReachable, upstreams, sharedDicts } = message.gauges;
        if (etcdReachable !== undefined) aggregator.setEtcdReachable(etcdReachable);
        if (upstreams !== undefined) aggregator.replaceUpstreamStatus(upstreams);
        for (const dict of sharedDicts ?? []) aggregator.setSharedDict(dict.name, dict.capacity, dict.free);
        break;
      }
      case 'close':
        void (server?.close() ?? Promise.resolve()).then(() => process.exit(0));
        break;
    }
  });
  // Signals to the gateway's process group do not reach this session; the agent's 'close' or its exit ends it.
  for (const signal of ['SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);

  const listen = async (): Promise<MetricsServer> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startMetricsServer(aggregator, {
          host: settings.host,
          port: settings.port,
          path: settings.path,
          maxAgeMs: settings.refreshIntervalMs,
        });
      } catch (error) {
        // After an agent restart the previous exporter may still hold the port for a moment.
        const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!inUse || attempt >= LISTEN_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, LISTEN_RETRY_MS));
      }
    }
  };
  listen().then(
    (started) => {
      server = started;
      reply({ type: 'listening', port: started.port });
    },
    (error: unknown) => reply({ type: 'listen-failed', error: error instanceof Error ? error.message : String(error) }),
  );
}

const exporterSettings = process.env[EXPORTER_ENV];
if (require.main === module && exporterSettings !== undefined && process.send !== undefined) {
  runMetricsExporter(JSON.parse(exporterSettings) as MetricsExporterSettings);
}
