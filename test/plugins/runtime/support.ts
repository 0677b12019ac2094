// Helpers for the runtime tests: temp directories holding plugin files written
// as CommonJS sources, and small in-memory plugin modules.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkPluginModule, PluginRegistry } from '../../../src/plugins/registry';
import type { ConfigSnapshot } from '../../../src/store/types';
import type { PluginModule } from '../../../src/plugins/types';

export interface PluginDir {
  readonly dir: string;
  /** Write `<file>.js` with a plugin module: name, priority, a version, and `body` as extra members. */
  write(file: string, fields: { name?: string; priority?: number; version?: string; body?: string }): string;
  /** Write raw source. */
  writeRaw(file: string, source: string): string;
  remove(file: string): void;
  close(): void;
}

export function pluginDir(prefix = 'palisade-plugins-'): PluginDir {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const fileOf = (file: string): string => path.join(dir, file.includes('.') ? file : `${file}.js`);
  return {
    dir,
    write(file, fields) {
      const name = fields.name ?? file;
      const source = [
        'module.exports = {',
        `  name: ${JSON.stringify(name)},`,
        `  version: ${JSON.stringify(fields.version ?? '0.1')},`,
        `  priority: ${fields.priority ?? 100},`,
        "  schema: { type: 'object', properties: { word: { type: 'string', default: 'hi' } } },",
        fields.body ?? '',
        '};',
        '',
      ].join('\n');
      return this.writeRaw(file, source);
    },
    writeRaw(file, source) {
      const target = fileOf(file);
      writeFileSync(target, source);
      return target;
    },
    remove(file) {
      rmSync(fileOf(file), { force: true });
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plugin module for chain tests; phases are no-ops unless given. */
export function fakePlugin(name: string, priority: number, extra: Partial<PluginModule> = {}): PluginModule {
  return {
    name,
    version: '0.1',
    priority,
    schema: { type: 'object', properties: { n: { type: 'integer', default: 1 } } },
    access: () => undefined,
    ...extra,
  };
}

export function emptySnapshot(version = 1): ConfigSnapshot {
  return {
    version,
    routes: [],
    services: [],
    upstreams: [],
    consumers: [],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

/** A registry of in-memory modules (checked as the loader checks files). */
export function registryOf(version: number, ...plugins: PluginModule[]): PluginRegistry {
  return new PluginRegistry(
    version,
    plugins.map((plugin) => ({
      plugin: checkPluginModule(plugin, `/mem/${plugin.name}.js`),
      origin: 'builtin',
      file: '',
      digest: '',
    })),
  );
}
