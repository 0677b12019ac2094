// Counting check results into a node's health state in the shared dictionary,
// with lua-resty-healthcheck's rules (the library behind APISIX's checks):
//
// - A healthy node counts failures; `unhealthy.http_failures`, `tcp_failures`
//   or `timeouts` consecutive failures of that kind make it unhealthy.
// - An unhealthy node counts successes; `healthy.successes` consecutive ones
//   make it healthy again.
// - A success ends a run of failures (the failure counts go back to 0) and a
//   failure ends a run of successes. Failures of different kinds add up
//   separately, so 1 timeout and 1 refused connect are 1 of each.
// - A threshold of 0 turns that kind of result off: it is not counted at all.
//
// The counters move with the dictionary's atomic incr, so every process sees
// each threshold crossing. Resetting a counter is a plain set, so a result
// reported by another process at the same instant can be lost; the effect is
// a node changing state one check later, which the checks tolerate anyway
// (lua-resty-healthcheck takes a lock per target instead).

import type { SharedDict } from '../native/shdict';
import type { Thresholds } from './config';
import type { NodeKeys } from './keys';

export const enum Outcome {
  Success = 0,
  HttpFailure = 1,
  TcpFailure = 2,
  Timeout = 3,
}

export const STATE_UNHEALTHY = 0;
export const STATE_HEALTHY = 1;

/** Each failure kind's place in the packed `failures` number (16 bits each; thresholds are at most 254). */
const HTTP_UNIT = 1;
const TCP_UNIT = 2 ** 16;
const TIMEOUT_UNIT = 2 ** 32;
const FIELD = 2 ** 16;

export interface FailureCounts {
  http: number;
  tcp: number;
  timeouts: number;
}

export function unpackFailures(packed: number): FailureCounts {
  return {
    http: packed % FIELD,
    tcp: Math.floor(packed / TCP_UNIT) % FIELD,
    timeouts: Math.floor(packed / TIMEOUT_UNIT) % FIELD,
  };
}

export function isHealthyState(value: string | number | undefined): boolean {
  return value !== STATE_UNHEALTHY;
}

/** Count one result for the node; returns whether the node is healthy afterwards. */
export function recordOutcome(dict: SharedDict, keys: NodeKeys, outcome: Outcome, thresholds: Thresholds): boolean {
  const healthy = isHealthyState(dict.get(keys.state));
  if (outcome === Outcome.Success) {
    if (thresholds.successes === 0) return healthy;
    if (healthy) {
      clearCounter(dict, keys.failures);
      return true;
    }
    const successes = dict.incr(keys.successes, 1, 0) ?? 0;
    if (successes < thresholds.successes) return false;
    dict.set(keys.state, STATE_HEALTHY);
    dict.set(keys.successes, 0);
    return true;
  }

  let unit: number;
  let threshold: number;
  switch (outcome) {
    case Outcome.HttpFailure:
      unit = HTTP_UNIT;
      threshold = thresholds.httpFailures;
      break;
    case Outcome.TcpFailure:
      unit = TCP_UNIT;
      threshold = thresholds.tcpFailures;
      break;
    default:
      unit = TIMEOUT_UNIT;
      threshold = thresholds.timeouts;
  }
  if (threshold === 0) return healthy;
  if (!healthy) {
    clearCounter(dict, keys.successes);
    return false;
  }
  const packed = dict.incr(keys.failures, unit, 0) ?? 0;
  if (Math.floor(packed / unit) % FIELD < threshold) return true;
  dict.set(keys.state, STATE_UNHEALTHY);
  dict.set(keys.failures, 0);
  return false;
}

/**
 * A success on a node this process already knows to be healthy: the one
 * dictionary read the passive reporter makes per good response.
 */
export function recordSuccessWhileHealthy(dict: SharedDict, keys: NodeKeys, thresholds: Thresholds): void {
  if (thresholds.successes !== 0) clearCounter(dict, keys.failures);
}

function clearCounter(dict: SharedDict, key: string): void {
  const value = dict.get(key);
  if (value !== undefined && value !== 0) dict.set(key, 0);
}
