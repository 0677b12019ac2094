// The IPC messages between the primary and its data-plane workers. Everything
// a worker needs arrives here; workers never read config.yaml or the store.

import type { LogLevel } from '../core/log';
import type { ListenAddress, ProxyLimits } from '../config/types';
import type { BackendName } from '../native/backend';
import type { ConfigSnapshot } from '../store/types';

/** What one data-plane worker is started with; fixed for the worker's life. */
export interface WorkerSettings {
  listen: ListenAddress[];
  limits: ProxyLimits;
  backend: BackendName;
  logLevel: LogLevel;
  /** Used when the worker itself is signalled; the primary's drain message carries its own. */
  drainTimeoutMs: number;
}

export type PrimaryMessage =
  | { type: 'start'; settings: WorkerSettings; snapshot: ConfigSnapshot }
  | { type: 'config'; snapshot: ConfigSnapshot }
  | { type: 'drain'; timeoutMs: number };

export type WorkerMessage =
  | { type: 'listening'; addresses: Array<{ address: string; port: number }>; backend: BackendName }
  | { type: 'start-failed'; error: string }
  | { type: 'applied'; version: number }
  | { type: 'apply-failed'; version: number; error: string };

function isObjectWithType(value: unknown): value is { type: unknown } {
  return typeof value === 'object' && value !== null && 'type' in value;
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return isObjectWithType(value) && (value.type === 'start' || value.type === 'config' || value.type === 'drain');
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return (
    isObjectWithType(value) &&
    (value.type === 'listening' ||
      value.type === 'start-failed' ||
      value.type === 'applied' ||
      value.type === 'apply-failed')
  );
}
