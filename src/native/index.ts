import type { BackendName, NativeBackend } from './backend';
import { loadFfiBackend } from './ffi';
import { loadJsBackend } from './js';
import { loadNapiBackend } from './napi';

export type { BackendName, NativeBackend } from './backend';

const loaders: Record<BackendName, () => NativeBackend> = {
  ffi: loadFfiBackend,
  napi: loadNapiBackend,
  js: loadJsBackend,
};

export function isBackendName(name: string): name is BackendName {
  return name === 'ffi' || name === 'napi' || name === 'js';
}

/** Load one backend by name; throws if it is not available. */
export function loadBackend(name: BackendName): NativeBackend {
  return loaders[name]();
}

/**
 * Load the requested backend (PALISADE_NATIVE_BACKEND overrides `configured`),
 * falling back to the pure TypeScript backend with a warning when the native
 * build is missing, so the gateway always starts.
 */
export function selectBackend(
  configured: string | undefined,
  warn: (message: string) => void = (m) => process.emitWarning(m),
): NativeBackend {
  const requested = process.env.PALISADE_NATIVE_BACKEND ?? configured ?? 'ffi';
  if (!isBackendName(requested)) {
    throw new Error(`native.backend must be one of ffi, napi, js; got "${requested}"`);
  }
  if (requested === 'js') return loadJsBackend();
  try {
    return loaders[requested]();
  } catch (err) {
    warn(
      `palisade: native backend "${requested}" is unavailable (${(err as Error).message}); ` +
        'running on the pure TypeScript backend "js". Run `npm run build:native` to build it.',
    );
    return loadJsBackend();
  }
}
