// An upstream's `checks` with APISIX's schema defaults filled in (apisix.md §3),
// in the shape the checker and the reporters use: seconds turned into ms,
// status lists turned into lookup tables.

import type { Upstream } from '../schema/types';

type Checks = NonNullable<Upstream['checks']>;
export type ActiveChecks = NonNullable<Checks['active']>;
export type PassiveChecks = NonNullable<Checks['passive']>;

export type CheckKind = 'http' | 'https' | 'tcp';

/** How many consecutive results of a kind change a node's state; 0 turns that kind off (as lua-resty-healthcheck). */
export interface Thresholds {
  readonly successes: number;
  readonly httpFailures: number;
  readonly tcpFailures: number;
  readonly timeouts: number;
}

/**
 * Statuses as a table indexed by status code: 1 counts as a success, 2 as an
 * HTTP failure, 0 is neither (ignored). A table rather than Sets so the passive
 * reporter's lookup per response is one array read.
 */
export type StatusTable = Uint8Array;

export const enum StatusClass {
  Ignored = 0,
  Success = 1,
  Failure = 2,
}

export interface ActiveSettings {
  readonly kind: CheckKind;
  readonly timeoutMs: number;
  readonly concurrency: number;
  /** Host header (and TLS server name); the node's host when unset. */
  readonly host: string | undefined;
  /** Port to check instead of the node's. */
  readonly port: number | undefined;
  readonly httpPath: string;
  readonly verifyCertificate: boolean;
  /** Extra request header lines, `Name: value`. */
  readonly requestHeaders: readonly string[];
  readonly healthyIntervalMs: number;
  readonly unhealthyIntervalMs: number;
  readonly statuses: StatusTable;
  readonly thresholds: Thresholds;
}

export interface PassiveSettings {
  readonly statuses: StatusTable;
  readonly thresholds: Thresholds;
}

const ACTIVE_HEALTHY_STATUSES = [200, 302];
const ACTIVE_UNHEALTHY_STATUSES = [429, 404, 500, 501, 502, 503, 504, 505];
const PASSIVE_HEALTHY_STATUSES = [
  200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
];
const PASSIVE_UNHEALTHY_STATUSES = [429, 500, 503];

function statusTable(healthy: readonly number[], unhealthy: readonly number[]): StatusTable {
  const table = new Uint8Array(600);
  for (const status of unhealthy) if (status >= 0 && status < 600) table[status] = StatusClass.Failure;
  // A status in both lists counts as a success, as lua-resty-healthcheck checks the healthy list first.
  for (const status of healthy) if (status >= 0 && status < 600) table[status] = StatusClass.Success;
  return table;
}

/** Seconds from the config as ms; the schema wants integers >= 1 but fractions work (tests use 0.1 s). */
function secondsToMs(seconds: number | undefined, fallback: number): number {
  const value = typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? seconds : fallback;
  return Math.max(1, Math.round(value * 1000));
}

export function activeSettings(active: ActiveChecks): ActiveSettings {
  const healthy = active.healthy ?? {};
  const unhealthy = active.unhealthy ?? {};
  return {
    kind: active.type ?? 'http',
    timeoutMs: secondsToMs(active.timeout, 1),
    concurrency: Math.max(1, active.concurrency ?? 10),
    host: active.host,
    port: active.port,
    httpPath: active.http_path ?? '/',
    verifyCertificate: active.https_verify_certificate ?? true,
    requestHeaders: active.req_headers ?? [],
    healthyIntervalMs: secondsToMs(healthy.interval, 1),
    unhealthyIntervalMs: secondsToMs(unhealthy.interval, 1),
    statuses: statusTable(
      healthy.http_statuses ?? ACTIVE_HEALTHY_STATUSES,
      unhealthy.http_statuses ?? ACTIVE_UNHEALTHY_STATUSES,
    ),
    thresholds: {
      successes: healthy.successes ?? 2,
      httpFailures: unhealthy.http_failures ?? 5,
      tcpFailures: unhealthy.tcp_failures ?? 2,
      timeouts: unhealthy.timeouts ?? 3,
    },
  };
}

export function passiveSettings(passive: PassiveChecks): PassiveSettings {
  const healthy = passive.healthy ?? {};
  const unhealthy = passive.unhealthy ?? {};
  return {
    statuses: statusTable(
      healthy.http_statuses ?? PASSIVE_HEALTHY_STATUSES,
      unhealthy.http_statuses ?? PASSIVE_UNHEALTHY_STATUSES,
    ),
    thresholds: {
      successes: healthy.successes ?? 5,
      httpFailures: unhealthy.http_failures ?? 5,
      tcpFailures: unhealthy.tcp_failures ?? 2,
      timeouts: unhealthy.timeouts ?? 7,
    },
  };
}
