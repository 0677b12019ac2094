// Assertions shared by the auth plugin unit tests.
import assert from 'node:assert/strict';

import type { MaybePromise, PhaseResult, PluginExit } from '../../../src/plugins/types';

/** The phase answered with this status and JSON body (and these headers, when given). */
export function assertExit(
  result: MaybePromise<PhaseResult>,
  status: number,
  body: Record<string, unknown>,
  headers?: Record<string, string>,
): void {
  assert.ok(result, `expected an exit ${status}, got none`);
  assert.ok(!(result instanceof Promise), 'expected a synchronous answer');
  const exit = result as PluginExit;
  assert.equal(exit.status, status);
  assert.deepEqual(exit.body, body);
  if (headers !== undefined) assert.deepEqual(exit.headers, headers);
}

/** The phase let the request go on. */
export function assertPassed(result: MaybePromise<PhaseResult>): void {
  assert.equal(result, undefined, `expected no exit, got ${JSON.stringify(result)}`);
}
