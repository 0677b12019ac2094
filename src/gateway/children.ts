// Forking and messaging the primary's children (the workers and the agent).
//
// A child killed a moment ago still looks connected until the primary's event loop
// sees its exit. A message written in that window fails with EPIPE, and Node reports
// a failed write without a callback as an 'error' event on the child; unhandled, that
// event throws in the primary and takes every worker down with it. So every child
// gets an 'error' listener, and every message a callback.

import cluster, { type Worker } from 'node:cluster';
import { errorText } from '../core/errors';
import { logger } from '../core/log';

const log = logger('primary');

/** Fork a worker or the agent (cluster.setupPrimary has named the script). */
export function forkChild(env?: NodeJS.ProcessEnv): Worker {
  const worker = cluster.fork(env);
  worker.on('error', (err: unknown) =>
    log.warn('child process error', { pid: worker.process.pid, error: errorText(err) }),
  );
  return worker;
}

/** Send one IPC message; a child that is gone or going is skipped or logged, never thrown at. */
export function sendToChild(worker: Worker, message: object): void {
  if (!worker.isConnected()) return;
  worker.send(message, (err) => {
    if (err) log.warn('could not message a child process', { pid: worker.process.pid, error: errorText(err) });
  });
}
