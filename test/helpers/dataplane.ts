// Start a DataPlane on an ephemeral port with a config built from a few routes.
import type { NativeBackend } from '../../src/native';
import type { Route, Service, Upstream } from '../../src/schema/types';
import type { ConfigSnapshot } from '../../src/store/types';
import { DataPlane, type DataPlaneLimits } from '../../src/dataplane/server';

export interface TestConfig {
  routes?: Route[];
  services?: Service[];
  upstreams?: Upstream[];
}

let versions = 0;

export function snapshot(config: TestConfig): ConfigSnapshot {
  return {
    version: ++versions,
    routes: config.routes ?? [],
    services: config.services ?? [],
    upstreams: config.upstreams ?? [],
    consumers: [],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

/** An upstream object pointing at local ports. */
export function localUpstream(ports: number[], extra: Partial<Upstream> = {}): Upstream {
  const nodes: Record<string, number> = {};
  for (const port of ports) nodes[`127.0.0.1:${port}`] = 1;
  return { type: 'roundrobin', nodes, ...extra };
}

export interface RunningDataPlane {
  readonly dataPlane: DataPlane;
  readonly port: number;
  close(drainTimeoutMs?: number): Promise<void>;
}

export async function startDataPlane(
  backend: NativeBackend,
  config: TestConfig,
  limits: Partial<DataPlaneLimits> = {},
): Promise<RunningDataPlane> {
  const dataPlane = new DataPlane(backend, { listen: [{ host: '127.0.0.1', port: 0 }], limits });
  dataPlane.applyConfig(snapshot(config));
  const [bound] = await dataPlane.listen();
  return { dataPlane, port: bound.port, close: (ms = 1000) => dataPlane.close(ms) };
}
