// A DataPlane whose routes run test plugin modules through the real chain
// compiler (src/plugins/chain.ts): modules go into a registry, routes and
// consumers into the snapshot.
import type { NativeBackend } from '../../../src/native';
import { DataPlane } from '../../../src/dataplane/server';
import type { OffloadPoolOptions } from '../../../src/plugins/offload';
import { PluginRegistry } from '../../../src/plugins/registry';
import type { PluginModule } from '../../../src/plugins/types';
import type { Consumer, Route, Upstream } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';

export interface PluginTestConfig {
  routes: Route[];
  consumers?: Consumer[];
  upstreams?: Upstream[];
}

export interface PluginDataPlane {
  readonly dataPlane: DataPlane;
  readonly port: number;
  close(): Promise<void>;
}

let versions = 0;

function pluginSnapshot(config: PluginTestConfig): ConfigSnapshot {
  return {
    version: ++versions,
    routes: config.routes,
    services: [],
    upstreams: config.upstreams ?? [],
    consumers: config.consumers ?? [],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

/** A registry holding `modules` as custom plugins (no file behind them). */
export function registryOf(modules: ReadonlyArray<PluginModule<never>>): PluginRegistry {
  return new PluginRegistry(
    1,
    modules.map((plugin) => ({
      plugin: plugin as unknown as PluginModule,
      origin: 'custom' as const,
      file: '',
      digest: '',
    })),
  );
}

export async function startPluginDataPlane(
  backend: NativeBackend,
  modules: ReadonlyArray<PluginModule<never>>,
  config: PluginTestConfig,
  offload?: OffloadPoolOptions,
): Promise<PluginDataPlane> {
  const dataPlane = new DataPlane(backend, {
    listen: [{ host: '127.0.0.1', port: 0 }],
    plugins: { registry: registryOf(modules) },
    offload,
  });
  dataPlane.applyConfig(pluginSnapshot(config));
  const [bound] = await dataPlane.listen();
  return { dataPlane, port: bound.port, close: () => dataPlane.close(1000) };
}

/** A permissive schema for test plugins. */
export const ANY_OBJECT = { type: 'object' } as const;

/** Wait until `check` holds (the log phase runs on setImmediate, after the answer). */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
