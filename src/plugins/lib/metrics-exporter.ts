// The agent's metrics thread: merges the workers' deltas and serves the
// exposition text on the metrics listener, on a worker thread whose nice
// value is 19. On Linux a thread has its own nice value (setpriority(2),
// NOTES: "the threads in a process do not share a nice value"), so merging
// and rendering 10,000 routes' metrics only get a core the workers leave
// idle, while the agent's main thread (etcd watch, health checks, IPC) keeps
// its normal priority.
//
// The agent's side (startMetricsThread) posts deltas and gauges; nothing comes
// back but whether the listener started.

import { setPriority } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import {
  MetricsAggregator,
  startMetricsServer,
  type MetricsDelta,
  type MetricsServer,
  type UpstreamNodeStatus,
} from './metrics';

/** The lowest priority: the thread runs when the workers leave a core idle. */
const METRICS_THREAD_NICE = 19;

export interface MetricsThreadSettings {
  host: string;
  port: number;
  path: string;
  prefix: string;
}

/** Gauges the agent reads from what it holds; each field replaces that gauge's whole state. */
export interface MetricsGauges {
  /** Undefined without etcd: then apisix_etcd_reachable is not shown. */
  etcdReachable?: boolean;
  upstreams?: readonly UpstreamNodeStatus[];
  sharedDicts?: ReadonlyArray<{ name: string; capacity: number; free: number }>;
}

type ToThread = { type: 'delta'; delta: MetricsDelta } | { type: 'gauges'; gauges: MetricsGauges } | { type: 'close' };

type FromThread = { type: 'listening'; port: number } | { type: 'listen-failed'; error: string } | { type: 'closed' };

export interface MetricsThread {
  /** Resolves with the listener's port once it listens; rejects when it cannot (the thread still merges). */
  readonly listening: Promise<number>;
  apply(delta: MetricsDelta): void;
  setGauges(gauges: MetricsGauges): void;
  close(): Promise<void>;
}

const WORKER_DATA_KIND = 'palisade-metrics-thread';

/** Start the metrics thread (in the agent). */
export function startMetricsThread(settings: MetricsThreadSettings): MetricsThread {
  const worker = new Worker(__filename, { workerData: { kind: WORKER_DATA_KIND, settings } });
  // The agent exits by process.exit; the thread must not hold it either way.
  worker.unref();
  let closed: (() => void) | undefined;
  const listening = new Promise<number>((resolve, reject) => {
    worker.on('message', (message: FromThread) => {
      if (message.type === 'listening') resolve(message.port);
      else if (message.type === 'listen-failed') reject(new Error(message.error));
      else closed?.();
    });
    worker.once('error', reject);
    worker.once('exit', () => {
      reject(new Error('the metrics thread exited'));
      closed?.();
    });
  });
  // Not every caller awaits it (the listener failing is logged by the agent).
  listening.catch(() => undefined);
  const post = (message: ToThread): void => worker.postMessage(message);
  return {
    listening,
    apply: (delta) => post({ type: 'delta', delta }),
    setGauges: (gauges) => post({ type: 'gauges', gauges }),
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 1000);
        closed = () => {
          clearTimeout(timer);
          resolve();
        };
        post({ type: 'close' });
      }),
  };
}

function runMetricsThread(settings: MetricsThreadSettings): void {
  const port = parentPort!;
  try {
    // pid 0 is the calling thread on Linux (see the top of this file).
    setPriority(0, METRICS_THREAD_NICE);
  } catch {
    // Not permitted or not supported: the thread runs at the agent's priority.
  }
  const aggregator = new MetricsAggregator({ prefix: settings.prefix });
  let server: MetricsServer | undefined;
  const reply = (message: FromThread): void => port.postMessage(message);

  port.on('message', (message: ToThread) => {
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
        void (server?.close() ?? Promise.resolve()).then(() => {
          reply({ type: 'closed' });
          port.close();
        });
        break;
    }
  });

  startMetricsServer(aggregator, { host: settings.host, port: settings.port, path: settings.path }).then(
    (started) => {
      server = started;
      reply({ type: 'listening', port: started.port });
    },
    (error: unknown) => reply({ type: 'listen-failed', error: error instanceof Error ? error.message : String(error) }),
  );
}

if (!isMainThread && (workerData as { kind?: unknown } | null)?.kind === WORKER_DATA_KIND) {
  runMetricsThread((workerData as { settings: MetricsThreadSettings }).settings);
}
