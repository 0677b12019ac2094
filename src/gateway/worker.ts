// A data-plane worker process: receives its settings and the config snapshot
// from the primary over IPC, serves traffic with a DataPlane, swaps in every
// new snapshot, and drains on request (or on SIGTERM/SIGINT from a terminal).

import { logger, setLogLevel } from '../core/log';
import { DataPlane } from '../dataplane/server';
import { selectBackend } from '../native';
import type { ConfigSnapshot } from '../store/types';
import { isPrimaryMessage, type PrimaryMessage, type WorkerMessage, type WorkerSettings } from './messages';

const log = logger('worker');

function send(message: WorkerMessage): void {
  if (process.send && process.connected) process.send(message);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function runWorker(): void {
  let dataPlane: DataPlane | undefined;
  let pendingSnapshot: ConfigSnapshot | undefined;
  let draining = false;
  let drainTimeoutMs = 30_000;

  // A snapshot that fails to compile is logged and the old route table stays.
  const apply = (snapshot: ConfigSnapshot): void => {
    if (!dataPlane) {
      pendingSnapshot = snapshot;
      return;
    }
    try {
      dataPlane.applyConfig(snapshot);
      send({ type: 'applied', version: snapshot.version });
    } catch (err) {
      log.error('config rejected; keeping the previous route table', {
        version: snapshot.version,
        error: errorText(err),
      });
      send({ type: 'apply-failed', version: snapshot.version, error: errorText(err) });
    }
  };

  const start = async (settings: WorkerSettings, snapshot: ConfigSnapshot): Promise<void> => {
    setLogLevel(settings.logLevel);
    drainTimeoutMs = settings.drainTimeoutMs;
    const backend = selectBackend(settings.backend, (message) => log.warn(message));
    const plane = new DataPlane(backend, {
      listen: settings.listen,
      limits: settings.limits,
    });
    dataPlane = plane;
    apply(pendingSnapshot && pendingSnapshot.version > snapshot.version ? pendingSnapshot : snapshot);
    pendingSnapshot = undefined;
    const addresses = await plane.listen();
    send({ type: 'listening', addresses, backend: backend.name });
  };

  const drain = async (timeoutMs: number): Promise<void> => {
    if (draining) return;
    draining = true;
    try {
      if (dataPlane) await dataPlane.close(timeoutMs);
    } catch (err) {
      log.error('error while draining', { error: errorText(err) });
    }
    process.exit(0);
  };

  process.on('message', (raw: unknown) => {
    if (!isPrimaryMessage(raw)) return;
    const message: PrimaryMessage = raw;
    if (message.type === 'start') {
      start(message.settings, message.snapshot).catch((err: unknown) => {
        log.error('data plane failed to start', { error: errorText(err) });
        send({ type: 'start-failed', error: errorText(err) });
        process.exit(1);
      });
    } else if (message.type === 'config') {
      apply(message.snapshot);
    } else {
      void drain(message.timeoutMs);
    }
  });

  // Ctrl-C reaches the whole process group, and the primary then sends a drain
  // message too: either way the worker drains once.
  const onSignal = (): void => void drain(drainTimeoutMs);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => undefined);
}
