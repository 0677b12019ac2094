// The pid file and status file a running primary keeps in its data dir, read
// by `palisade stop|reload|status`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackendName } from '../native/backend';

export const PID_FILE = 'palisade.pid';
export const STATUS_FILE = 'status.json';

export interface WorkerStatus {
  pid: number | undefined;
  backend: BackendName | undefined;
  /** The config version this worker's route table was compiled from (-1 before the first). */
  appliedVersion: number;
}

export interface AgentStatus {
  pid: number | undefined;
  ready: boolean;
  /** Whether active health checks run in it. */
  healthChecks: boolean;
}

export interface GatewayStatus {
  pid: number;
  startedAt: string;
  updatedAt: string;
  configPath: string | undefined;
  /** Deployment role: traditional, data_plane or control_plane. */
  role: string;
  storeType: string;
  dataDir: string;
  proxy: string[];
  admin: string | undefined;
  control: string | undefined;
  backend: BackendName | undefined;
  /** The store's current config version. */
  configVersion: number;
  workers: WorkerStatus[];
  /** The privileged agent; undefined while it is being restarted, and in the control_plane role. */
  agent: AgentStatus | undefined;
}

export function pidFilePath(dataDir: string): string {
  return path.join(dataDir, PID_FILE);
}

export function statusFilePath(dataDir: string): string {
  return path.join(dataDir, STATUS_FILE);
}

/** Write via a temporary file and rename, so a reader never sees half a file. */
function writeAtomically(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text);
  fs.renameSync(temporary, file);
}

export function readPid(dataDir: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(pidFilePath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the running primary for this data dir, or undefined (a stale pid file does not count). */
export function runningPid(dataDir: string): number | undefined {
  const pid = readPid(dataDir);
  return pid !== undefined && isProcessAlive(pid) ? pid : undefined;
}

export function writePidFile(dataDir: string, pid: number): void {
  writeAtomically(pidFilePath(dataDir), `${pid}\n`);
}

export function writeStatusFile(dataDir: string, status: GatewayStatus): void {
  writeAtomically(statusFilePath(dataDir), JSON.stringify(status, null, 2) + '\n');
}

export function readStatusFile(dataDir: string): GatewayStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(statusFilePath(dataDir), 'utf8')) as GatewayStatus;
  } catch {
    return undefined;
  }
}

/** Remove the pid and status files, but only if they still belong to `pid`. */
export function removeRuntimeFiles(dataDir: string, pid: number): void {
  if (readPid(dataDir) === pid) fs.rmSync(pidFilePath(dataDir), { force: true });
  const status = readStatusFile(dataDir);
  if (status === undefined || status.pid === pid) fs.rmSync(statusFilePath(dataDir), { force: true });
}
