// Loads plugin modules into registries (registry.ts).
//
// Built-ins are the compiled files of src/plugins/builtin (dist/src/plugins/
// builtin/*.js), found by reading that directory once per process. Custom
// plugins are the `.js` files directly in `plugin_dir` (CommonJS, a plugin
// module as `module.exports` or `exports.default`; compile TypeScript first).
// Files starting with "." are ignored, and files in subdirectories are helpers
// a plugin may require.
//
// reload() re-reads plugin_dir: a file whose contents changed (sha256) is
// required again after its require.cache entries (and those of helpers under
// plugin_dir) are dropped, a new file is loaded, a missing file's plugin is
// removed. A file that fails to load keeps its previous version (and the
// failure is reported), so a bad edit cannot take a working plugin away. When
// something changed the result is a new registry with a higher version.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorText } from '../core/errors';
import { logger } from '../core/log';
import { checkPluginModule, PluginLoadError, PluginRegistry, type LoadedPlugin } from './registry';

const log = logger('plugins');

/** Plugins that run code from the Admin API; only loaded when `serverless.enabled` is true. */
export const SERVERLESS_PLUGINS: readonly string[] = ['serverless-pre-function', 'serverless-post-function'];

export const BUILTIN_PLUGIN_DIR = path.join(__dirname, 'builtin');

export interface PluginSettings {
  /** config.yaml `plugins`: the names to enable; undefined enables every built-in and custom plugin. */
  readonly enabled: readonly string[] | undefined;
  /** config.yaml `plugin_dir`: custom plugins; undefined for none. */
  readonly pluginDir: string | undefined;
  /** config.yaml `serverless.enabled`. */
  readonly serverless: boolean;
}

export const DEFAULT_PLUGIN_SETTINGS: PluginSettings = { enabled: undefined, pluginDir: undefined, serverless: false };

export interface LoadFailure {
  readonly file: string;
  readonly error: string;
}

/** What a load or reload did. */
export interface ReloadReport {
  readonly version: number;
  readonly added: string[];
  readonly changed: string[];
  readonly removed: string[];
  readonly failed: LoadFailure[];
}

function digestOf(contents: Buffer): string {
  return createHash('sha256').update(contents).digest('hex');
}

function isPluginFile(file: string): boolean {
  return !file.startsWith('.') && (file.endsWith('.js') || file.endsWith('.cjs'));
}

/** Require `file` afresh and check it. */
function requireFresh(file: string): LoadedPlugin['plugin'] {
  delete require.cache[file];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const exported: unknown = require(file);
  return checkPluginModule(exported, file);
}

/** Built-ins never change while the process runs: required once, shared by every loader. */
let builtinCache: { dir: string; plugins: LoadedPlugin[] } | undefined;

function loadBuiltins(dir: string, failed: LoadFailure[]): LoadedPlugin[] {
  if (builtinCache?.dir === dir) return builtinCache.plugins;
  const plugins: LoadedPlugin[] = [];
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter(isPluginFile).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const name of files) {
    const file = path.join(dir, name);
    try {
      plugins.push({ plugin: requireFresh(file), origin: 'builtin', file, digest: '' });
    } catch (err) {
      log.error('failed to load a built-in plugin', { file, error: errorText(err) });
      failed.push({ file, error: errorText(err) });
    }
  }
  builtinCache = { dir, plugins };
  return plugins;
}

/** Drop every require.cache entry under `dir`, so helpers a plugin requires are read again too. */
function forgetModulesUnder(dir: string): void {
  const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
  for (const key of Object.keys(require.cache)) if (key.startsWith(prefix)) delete require.cache[key];
}

export class PluginLoader {
  #settings: PluginSettings;
  readonly #builtinDir: string;
  #registry = PluginRegistry.empty();
  /** Custom plugins by file, as last loaded (also those the enabled list leaves out). */
  #custom = new Map<string, LoadedPlugin>();
  #loaded = false;

  constructor(settings: PluginSettings = DEFAULT_PLUGIN_SETTINGS, builtinDir = BUILTIN_PLUGIN_DIR) {
    this.#settings = settings;
    this.#builtinDir = builtinDir;
  }

  get registry(): PluginRegistry {
    return this.#registry;
  }

  get settings(): PluginSettings {
    return this.#settings;
  }

  /** Load everything; the first call. Later calls behave like reload(). */
  load(): ReloadReport {
    return this.reload();
  }

  /**
   * Re-read the custom plugin directory (and, with `settings`, apply a new
   * enabled list or directory). The registry is replaced only when something
   * changed.
   */
  reload(settings?: PluginSettings): ReloadReport {
    const settingsChanged = settings !== undefined && JSON.stringify(settings) !== JSON.stringify(this.#settings);
    if (settings !== undefined) this.#settings = settings;
    const failed: LoadFailure[] = [];
    const builtins = loadBuiltins(this.#builtinDir, failed);
    const customChanged = this.#reloadCustom(failed);

    const previous = this.#registry;
    const candidates = this.#enabledPlugins(builtins);
    const added: string[] = [];
    const changed: string[] = [];
    for (const loaded of candidates) {
      const before = previous.loaded(loaded.plugin.name);
      if (before === undefined) added.push(loaded.plugin.name);
      else if (before.plugin !== loaded.plugin) changed.push(loaded.plugin.name);
    }
    const names = new Set(candidates.map((loaded) => loaded.plugin.name));
    const removed = previous.names().filter((name) => !names.has(name));
    const anyChange =
      !this.#loaded || settingsChanged || customChanged || added.length + changed.length + removed.length > 0;
    if (anyChange) this.#registry = new PluginRegistry(previous.version + 1, candidates);
    this.#loaded = true;
    const report: ReloadReport = { version: this.#registry.version, added, changed, removed, failed };
    if (anyChange || failed.length > 0) {
      log.info('plugins loaded', {
        version: report.version,
        plugins: this.#registry.size,
        added: added.length > 10 ? added.length : added,
        changed,
        removed,
        failed: failed.length,
      });
    }
    return report;
  }

  /**
   * Check a plugin file before it goes live (Admin API upload): write it next
   * to the others under a hidden name, require and check it, then move it to
   * `<name>.js`. Returns the error text, or undefined when it was installed
   * (call reload() to activate it).
   */
  install(name: string, source: string): string | undefined {
    const dir = this.#settings.pluginDir;
    if (dir === undefined) return 'plugin_dir is not configured';
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) return `invalid plugin name: ${name}`;
    fs.mkdirSync(dir, { recursive: true });
    const staging = path.join(dir, `.upload-${name}-${process.pid}-${Date.now()}.js`);
    fs.writeFileSync(staging, source, { mode: 0o644 });
    try {
      const plugin = requireFresh(staging);
      if (plugin.name !== name) return `the module's name is "${plugin.name}", not "${name}"`;
      fs.renameSync(staging, path.join(dir, `${name}.js`));
      return undefined;
    } catch (err) {
      return errorText(err);
    } finally {
      delete require.cache[staging];
      fs.rmSync(staging, { force: true });
    }
  }

  /** Bring #custom up to date with plugin_dir; true when a plugin was added, changed or removed. */
  #reloadCustom(failed: LoadFailure[]): boolean {
    const dir = this.#settings.pluginDir;
    const next = new Map<string, LoadedPlugin>();
    let files: string[] = [];
    if (dir !== undefined) {
      try {
        files = fs
          .readdirSync(dir)
          .filter(isPluginFile)
          .sort()
          .map((name) => path.join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        log.warn('plugin_dir does not exist; no custom plugins', { plugin_dir: dir });
      }
    }
    const contents = new Map<string, Buffer>();
    for (const file of files) {
      try {
        contents.set(file, fs.readFileSync(file));
      } catch (err) {
        failed.push({ file, error: errorText(err) }); // removed between readdir and read
      }
    }
    const stale = files.filter((file) => {
      const body = contents.get(file);
      return body !== undefined && this.#custom.get(file)?.digest !== digestOf(body);
    });
    if (stale.length > 0 && dir !== undefined) forgetModulesUnder(dir);

    let changed = false;
    const names = new Map<string, string>();
    for (const file of files) {
      const body = contents.get(file);
      const before = this.#custom.get(file);
      if (body === undefined) continue;
      const digest = digestOf(body);
      let loaded = before;
      if (before === undefined || before.digest !== digest) {
        try {
          loaded = { plugin: requireFresh(file), origin: 'custom', file, digest };
          changed = true;
        } catch (err) {
          const error = err instanceof PluginLoadError ? err.message : `failed to load plugin: ${errorText(err)}`;
          log.error(before ? 'a changed plugin failed to load; keeping its previous version' : error, {
            file,
            error,
          });
          failed.push({ file, error });
        }
      }
      if (loaded === undefined) continue;
      const other = names.get(loaded.plugin.name);
      if (other !== undefined) {
        const error = `duplicate plugin name ${loaded.plugin.name} (also in ${other})`;
        log.error(error, { file });
        failed.push({ file, error });
        continue;
      }
      names.set(loaded.plugin.name, file);
      next.set(file, loaded);
    }
    for (const file of this.#custom.keys()) if (!next.has(file)) changed = true;
    this.#custom = next;
    return changed;
  }

  /** Built-ins overlaid by custom plugins of the same name, filtered by the enabled list and the serverless switch. */
  #enabledPlugins(builtins: readonly LoadedPlugin[]): LoadedPlugin[] {
    const byName = new Map<string, LoadedPlugin>();
    for (const loaded of builtins) byName.set(loaded.plugin.name, loaded);
    for (const loaded of this.#custom.values()) {
      if (byName.get(loaded.plugin.name)?.origin === 'builtin') {
        log.warn('a custom plugin replaces the built-in of the same name', {
          plugin: loaded.plugin.name,
          file: loaded.file,
        });
      }
      byName.set(loaded.plugin.name, loaded);
    }
    const { enabled, serverless } = this.#settings;
    if (enabled !== undefined) {
      for (const name of enabled) {
        if (!byName.has(name)) log.warn('a plugin named in `plugins` is not found', { plugin: name });
      }
      const wanted = new Set(enabled);
      for (const name of [...byName.keys()]) if (!wanted.has(name)) byName.delete(name);
    }
    if (!serverless) for (const name of SERVERLESS_PLUGINS) byName.delete(name);
    return [...byName.values()];
  }
}
