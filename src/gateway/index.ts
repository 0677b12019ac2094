// Run the gateway in the foreground: start the primary, then wait for
// SIGTERM/SIGINT (drain and stop) or SIGHUP (reload). Resolves with the
// process exit code.

import { loadConfig, type LoadOptions } from '../config/load';
import { logger } from '../core/log';
import { Primary } from './primary';

export { Primary } from './primary';
export type { AgentStatus, GatewayStatus, WorkerStatus } from './runtime-files';
export { readPid, readStatusFile, runningPid, pidFilePath, statusFilePath, isProcessAlive } from './runtime-files';

const log = logger('gateway');

export async function runGateway(loadOptions: LoadOptions): Promise<number> {
  const config = loadConfig(loadOptions);
  const primary = new Primary(config, { reloadConfig: () => loadConfig(loadOptions) });

  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn(`second ${signal}: exiting without waiting for the drain`);
      resolveDone(1);
      return;
    }
    stopping = true;
    log.info(`${signal} received`);
    primary.stop().then(
      () => resolveDone(0),
      (err: unknown) => {
        log.error('stop failed', { error: err instanceof Error ? err.message : String(err) });
        resolveDone(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    log.info('SIGHUP received: reloading');
    void primary.reload();
  });

  try {
    await primary.start();
  } catch (err) {
    // Undo what did start (workers, Admin API, pid file); the caller reports the error.
    await primary.stop().catch(() => undefined);
    throw err;
  }
  return done;
}
