// The set of loaded plugins at one moment: name -> module, plus where each
// came from. A registry never changes; the loader (loader.ts) builds a new one
// with a higher version on every reload, and chains compiled against the old
// one keep their modules, so requests in flight finish on the code they
// started with.

import { compileValidators, type PluginSource } from './catalog';
import type { PluginModule } from './types';

export type PluginOrigin = 'builtin' | 'custom';

export interface LoadedPlugin {
  readonly plugin: PluginModule;
  readonly origin: PluginOrigin;
  /** The module file it was required from. */
  readonly file: string;
  /** sha256 of the file's contents when it was loaded (custom plugins: reload compares it). */
  readonly digest: string;
}

/** A plugin module that failed the checks below; the message says what is wrong. */
export class PluginLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginLoadError';
  }
}

const PHASES = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'] as const;
const PLUGIN_NAME = /^[a-z0-9][a-z0-9_-]*$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Check what a plugin file exports (`export default` or `module.exports`) and
 * return it as a module with `source` set to the file. Throws PluginLoadError
 * with APISIX's wording (`invalid plugin [x], missing field: priority`) where
 * APISIX has one.
 */
export function checkPluginModule(exported: unknown, file: string): PluginModule {
  const candidate = isObject(exported) && isObject(exported.default) ? exported.default : exported;
  if (!isObject(candidate)) throw new PluginLoadError(`${file}: does not export a plugin module object`);
  const name = candidate.name;
  if (typeof name !== 'string' || !PLUGIN_NAME.test(name)) {
    throw new PluginLoadError(
      `${file}: invalid plugin name ${JSON.stringify(name)} (lower-case letters, digits, - and _)`,
    );
  }
  if (typeof candidate.priority !== 'number' || !Number.isInteger(candidate.priority)) {
    throw new PluginLoadError(`invalid plugin [${name}], missing field: priority`);
  }
  if (typeof candidate.version !== 'string' || candidate.version === '') {
    throw new PluginLoadError(`invalid plugin [${name}] missing field: version`);
  }
  if (!isObject(candidate.schema)) throw new PluginLoadError(`invalid plugin [${name}] schema field`);
  if (isObject(candidate.schema.properties) && '_meta' in candidate.schema.properties) {
    throw new PluginLoadError(`invalid plugin [${name}]: found forbidden '_meta' field in the schema`);
  }
  for (const field of ['consumerSchema', 'metadataSchema'] as const) {
    if (candidate[field] !== undefined && !isObject(candidate[field])) {
      throw new PluginLoadError(`invalid plugin [${name}] ${field} field`);
    }
  }
  if (candidate.type !== undefined && candidate.type !== 'auth') {
    throw new PluginLoadError(`invalid plugin [${name}] type field: only "auth" is known`);
  }
  for (const field of [...PHASES, 'check', 'compile', 'release', 'phases'] as const) {
    if (candidate[field] !== undefined && typeof candidate[field] !== 'function') {
      throw new PluginLoadError(`invalid plugin [${name}] ${field} field: must be a function`);
    }
  }
  if (candidate.tasks !== undefined) {
    if (!isObject(candidate.tasks) || Object.values(candidate.tasks).some((task) => typeof task !== 'function')) {
      throw new PluginLoadError(`invalid plugin [${name}] tasks field: must map names to functions`);
    }
  }
  const plugin = Object.freeze({ ...candidate, source: file }) as unknown as PluginModule;
  try {
    compileValidators(plugin);
  } catch (err) {
    throw new PluginLoadError(`invalid plugin [${name}] schema: ${(err as Error).message}`);
  }
  return plugin;
}

/** Highest priority first; equal priorities by name, so the order never depends on load order. */
export function comparePlugins(a: PluginModule, b: PluginModule): number {
  return b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

export class PluginRegistry implements PluginSource {
  /** Grows by one on every reload that changed something. */
  readonly version: number;
  readonly #plugins: ReadonlyMap<string, LoadedPlugin>;
  readonly #names: readonly string[];

  constructor(version: number, plugins: Iterable<LoadedPlugin>) {
    this.version = version;
    const byName = new Map<string, LoadedPlugin>();
    for (const loaded of plugins) byName.set(loaded.plugin.name, loaded);
    this.#plugins = byName;
    this.#names = [...byName.values()]
      .map((loaded) => loaded.plugin)
      .sort(comparePlugins)
      .map((plugin) => plugin.name);
  }

  static empty(): PluginRegistry {
    return new PluginRegistry(0, []);
  }

  get size(): number {
    return this.#plugins.size;
  }

  get(name: string): PluginModule | undefined {
    return this.#plugins.get(name)?.plugin;
  }

  has(name: string): boolean {
    return this.#plugins.has(name);
  }

  loaded(name: string): LoadedPlugin | undefined {
    return this.#plugins.get(name);
  }

  /** Plugin names, highest priority first. */
  names(): string[] {
    return [...this.#names];
  }

  entries(): IterableIterator<LoadedPlugin> {
    return this.#plugins.values();
  }
}
