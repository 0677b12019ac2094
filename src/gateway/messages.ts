// The IPC messages between the primary and its children: the data-plane
// workers and the privileged agent. Everything a child needs arrives here;
// children never read config.yaml, and workers never open the store.
//
// Configuration travels as a full snapshot once (at start, or when a child
// asks to resync) and as ConfigDeltas afterwards (see config-mirror.ts).

import type { LogLevel } from '../core/log';
import type { EtcdConfig, ListenAddress, ProxyLimits } from '../config/types';
import type { BackendName } from '../native/backend';
import type { MetricsDelta } from '../plugins/lib/metrics';
import type { MetricsExporterSettings } from '../plugins/lib/metrics-exporter';
import type { PluginSettings } from '../plugins/loader';
import type { OffloadPoolOptions } from '../plugins/offload';
import type { ConfigSnapshot } from '../store/types';
import type { ConfigDelta } from './config-mirror';

/** A shared dictionary the primary created; children open the same file. */
export interface SharedDictSetting {
  name: string;
  capacity: number;
  path: string;
}

/** What one data-plane worker is started with; fixed for the worker's life. */
export interface WorkerSettings {
  listen: ListenAddress[];
  limits: ProxyLimits;
  backend: BackendName;
  logLevel: LogLevel;
  /** Used when the worker itself is signalled; the primary's drain message carries its own. */
  drainTimeoutMs: number;
  sharedDicts: SharedDictSetting[];
  /** Which plugins to load; a plugins reload message replaces it. */
  plugins: PluginSettings;
  /** The offload thread pool (`plugin_attr.offload`). */
  offload: OffloadPoolOptions;
}

/** What the privileged agent is started with. */
export interface AgentSettings {
  backend: BackendName;
  logLevel: LogLevel;
  sharedDicts: SharedDictSetting[];
  /** Set when the agent is the configuration source: it watches etcd (read-only) and sends what it sees. */
  etcd: EtcdConfig | undefined;
  plugins: PluginSettings;
  /** Where to serve the merged prometheus metrics; undefined: no listener. */
  metrics: AgentMetricsSettings | undefined;
}

/** Where and how the agent's metrics exporter serves the merged metrics. */
export type AgentMetricsSettings = MetricsExporterSettings;

/** Status of the agent's active health checks, in the control API's shape. */
export type HealthReportBody = unknown;

export type PrimaryMessage =
  | { type: 'start'; settings: WorkerSettings; snapshot: ConfigSnapshot }
  | { type: 'agent-start'; settings: AgentSettings; snapshot: ConfigSnapshot | undefined }
  | { type: 'config'; snapshot: ConfigSnapshot }
  | { type: 'config-delta'; delta: ConfigDelta }
  /** To the agent: send the whole configuration again (the primary missed a delta). */
  | { type: 'resync' }
  | { type: 'health-query'; id: number }
  /** PUT /apisix/admin/plugins/reload: re-read the plugins (with these settings) and recompile the chains. */
  | { type: 'plugins-reload'; id: number; plugins: PluginSettings }
  /** To the agent: what one worker's prometheus plugin counted since its last shipment. */
  | { type: 'metrics'; delta: MetricsDelta }
  /** To a worker: name every metrics series again in its next shipments (a new agent, or a shipment was lost). */
  | { type: 'metrics-rename' }
  | { type: 'drain'; timeoutMs: number };

/** A child's answer to plugins-reload: its registry version afterwards, and files that failed to load. */
export interface PluginsReloaded {
  type: 'plugins-reloaded';
  id: number;
  version: number;
  failed: Array<{ file: string; error: string }>;
}

export type WorkerMessage =
  | { type: 'listening'; addresses: Array<{ address: string; port: number }>; backend: BackendName }
  | { type: 'start-failed'; error: string }
  /** `applyMs`: how long the data plane took to compile and swap in this version. */
  | { type: 'applied'; version: number; applyMs: number }
  | { type: 'apply-failed'; version: number; error: string }
  /** A delta did not start at this child's version: send the full snapshot. */
  | { type: 'resync'; version: number }
  /** What this worker's prometheus plugin counted since the last shipment; the primary relays it to the agent. */
  | { type: 'metrics'; delta: MetricsDelta }
  | PluginsReloaded;

export type AgentMessage =
  | { type: 'agent-ready'; backend: BackendName; healthChecks: boolean }
  | { type: 'start-failed'; error: string }
  /** The agent as configuration source: the whole configuration (first, and after a resync). */
  | { type: 'source-snapshot'; snapshot: ConfigSnapshot }
  | { type: 'source-delta'; delta: ConfigDelta }
  | { type: 'health-report'; id: number; report: HealthReportBody | null; error?: string }
  /** The primary is the source and a delta did not start at the agent's version: send the full snapshot. */
  | { type: 'resync'; version: number }
  | PluginsReloaded;

const PRIMARY_TYPES: ReadonlySet<string> = new Set([
  'start',
  'agent-start',
  'config',
  'config-delta',
  'resync',
  'health-query',
  'plugins-reload',
  'metrics',
  'metrics-rename',
  'drain',
]);
const WORKER_TYPES: ReadonlySet<string> = new Set([
  'listening',
  'start-failed',
  'applied',
  'apply-failed',
  'resync',
  'metrics',
  'plugins-reloaded',
]);
const AGENT_TYPES: ReadonlySet<string> = new Set([
  'agent-ready',
  'start-failed',
  'source-snapshot',
  'source-delta',
  'health-report',
  'resync',
  'plugins-reloaded',
]);

function typeOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !('type' in value)) return undefined;
  const type = (value as { type: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return PRIMARY_TYPES.has(typeOf(value) ?? '');
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return WORKER_TYPES.has(typeOf(value) ?? '');
}

export function isAgentMessage(value: unknown): value is AgentMessage {
  return AGENT_TYPES.has(typeOf(value) ?? '');
}

/** Environment variable set on the agent's fork; worker-main.ts picks the agent's entry with it. */
export const AGENT_ENV = 'PALISADE_PROCESS_ROLE';
export const AGENT_ENV_VALUE = 'agent';
