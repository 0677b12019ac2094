// The shared dictionaries named in config.yaml (`shared_dicts`). The primary
// creates each one fresh before any child starts; workers and the agent open
// the same files. The file name carries a hash of the data dir, so two
// gateways on one machine never share (or wipe) each other's dictionaries.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SharedDictConfig } from '../config/types';
import type { NativeBackend } from '../native/backend';
import { openSharedDict, sharedDictPath, type SharedDict } from '../native/shdict';
import type { SharedDictSetting } from './messages';

/** The file of dictionary `name` for the gateway whose data dir is `dataDir`. */
export function sharedDictFile(name: string, dataDir: string): string {
  const gateway = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return sharedDictPath(`${name}-${gateway}`);
}

export function sharedDictSettings(dicts: SharedDictConfig[], dataDir: string): SharedDictSetting[] {
  return dicts.map(({ name, capacity }) => ({ name, capacity, path: sharedDictFile(name, dataDir) }));
}

/** Primary: create every dictionary empty, then close it (children keep their own mappings). */
export function createSharedDicts(backend: NativeBackend, settings: SharedDictSetting[]): void {
  for (const { name, capacity, path: file } of settings) {
    openSharedDict(backend, name, capacity, { path: file, fresh: true }).close();
  }
}

/** Worker or agent: open every dictionary the primary created. */
export function openSharedDicts(backend: NativeBackend, settings: SharedDictSetting[]): Map<string, SharedDict> {
  const opened = new Map<string, SharedDict>();
  for (const { name, capacity, path: file } of settings) {
    opened.set(name, openSharedDict(backend, name, capacity, { path: file }));
  }
  return opened;
}

/** Primary, at stop: remove the files. */
export function removeSharedDicts(settings: SharedDictSetting[]): void {
  for (const { path: file } of settings) fs.rmSync(file, { force: true });
}
