// The native backends a data-plane test can run on: always the pure TypeScript
// one, plus the koffi library when it has been built.
import { existsSync } from 'node:fs';

import { loadBackend, type BackendName, type NativeBackend } from '../../src/native';
import { addonPath, sharedLibraryPath } from '../../src/native/paths';

export function availableBackends(wanted: readonly BackendName[] = ['js', 'ffi']): NativeBackend[] {
  const built: Record<BackendName, boolean> = {
    js: true,
    ffi: existsSync(sharedLibraryPath),
    napi: existsSync(addonPath),
  };
  const only = process.env.PALISADE_TEST_BACKENDS?.split(',');
  return wanted
    .filter((name) => built[name] && (only === undefined || only.includes(name)))
    .map((name) => loadBackend(name));
}
