// The `palisade` command (bin/palisade): start, stop, reload, status, version.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config/load';
import type { PalisadeConfig } from '../config/types';
import { PalisadeError } from '../core/errors';
import { runGateway } from '../gateway';
import { isProcessAlive, pidFilePath, readPid, readStatusFile, runningPid } from '../gateway/runtime-files';
import { packageRoot } from '../native/paths';
import { parseArgs, USAGE, UsageError, type CliArgs } from './args';

/** Exit code of `status` when the gateway is not running (LSB convention). */
export const EXIT_NOT_RUNNING = 3;

function print(line: string): void {
  process.stdout.write(line + '\n');
}

function fail(command: string, message: string, code = 1): number {
  process.stderr.write(`palisade ${command}: ${message}\n`);
  return code;
}

export function version(): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function stop(args: CliArgs, config: PalisadeConfig): Promise<number> {
  const { dataDir } = config.store;
  const pidFile = pidFilePath(dataDir);
  const pid = readPid(dataDir);
  if (pid === undefined) return fail('stop', `not running (no pid file at ${pidFile})`);
  if (!isProcessAlive(pid)) {
    fs.rmSync(pidFile, { force: true });
    return fail('stop', `not running (stale pid file at ${pidFile} for pid ${pid}, removed)`);
  }
  process.kill(pid, 'SIGTERM');
  const timeoutMs = (args.timeoutSeconds ?? config.proxy.drainTimeoutMs / 1000 + 10) * 1000;
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) return fail('stop', `pid ${pid} still running after ${timeoutMs / 1000}s`);
    await sleep(100);
  }
  print(`palisade: stopped (pid ${pid})`);
  return 0;
}

function reload(config: PalisadeConfig): number {
  const { dataDir } = config.store;
  const pid = runningPid(dataDir);
  if (pid === undefined) return fail('reload', `not running (no live pid in ${pidFilePath(dataDir)})`);
  process.kill(pid, 'SIGHUP');
  print(`palisade: reload signalled (pid ${pid})`);
  return 0;
}

function status(args: CliArgs, config: PalisadeConfig): number {
  const { dataDir } = config.store;
  const pid = runningPid(dataDir);
  const current = pid === undefined ? undefined : readStatusFile(dataDir);
  if (args.json) {
    print(JSON.stringify({ running: pid !== undefined, pid, status: current?.pid === pid ? current : undefined }));
    return pid === undefined ? EXIT_NOT_RUNNING : 0;
  }
  if (pid === undefined) {
    print(`palisade: not running (data dir ${dataDir})`);
    return EXIT_NOT_RUNNING;
  }
  print(`palisade: running (pid ${pid})`);
  if (current === undefined || current.pid !== pid) {
    print('status: starting (no status file yet)');
    return 0;
  }
  const applied = current.workers.map((w) => w.appliedVersion);
  const agent = current.agent;
  print(`role:           ${current.role}`);
  print(`proxy:          ${current.proxy.join(', ') || '(no worker listening)'}`);
  print(`admin:          ${current.admin ?? '(not listening)'}`);
  print(`control:        ${current.control ?? '(not listening)'}`);
  print(`backend:        ${current.backend ?? 'unknown'}`);
  print(`store:          ${current.storeType} (${current.dataDir})`);
  print(`config version: ${current.configVersion} (workers applied: ${applied.join(', ') || 'none'})`);
  print(`workers:        ${current.workers.length} (pids ${current.workers.map((w) => w.pid).join(', ')})`);
  if (current.role !== 'control_plane') {
    const agentText =
      agent === undefined
        ? '(restarting)'
        : `pid ${agent.pid}${agent.ready ? '' : ' (starting)'}, health checks ${agent.healthChecks ? 'on' : 'off'}`;
    print(`agent:          ${agentText}`);
  }
  print(`config file:    ${current.configPath ?? '(defaults only)'}`);
  print(`started:        ${current.startedAt}`);
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`palisade: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (args.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.command === 'version') {
    print(`palisade ${version()}`);
    return 0;
  }

  try {
    if (args.command === 'start') return await runGateway({ configPath: args.configPath });
    const config = loadConfig({ configPath: args.configPath });
    if (args.command === 'stop') return await stop(args, config);
    if (args.command === 'reload') return reload(config);
    return status(args, config);
  } catch (err) {
    if (err instanceof PalisadeError || err instanceof Error) return fail(args.command, err.message);
    return fail(args.command, String(err));
  }
}
