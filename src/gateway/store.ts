// The config store the primary opens, chosen by `store.type`. With etcd the
// primary's store serves the Admin API (reads and writes); the agent watches
// etcd with its own read-only store and is the one that feeds the workers.

import type { PalisadeConfig } from '../config/types';
import type { Logger } from '../core/log';
import { createEmbeddedStore, createEtcdStore, createStandaloneStore } from '../store';
import type { ConfigStore } from '../store/types';

export function createConfigStore(config: PalisadeConfig, log: Logger): ConfigStore {
  switch (config.store.type) {
    case 'embedded':
      return createEmbeddedStore(config.store.dataDir);
    case 'standalone':
      return createStandaloneStore(config.store.standaloneFile, {
        onError: (message) => log.error('standalone config rejected; keeping the previous one', { message }),
      });
    case 'etcd': {
      const etcd = config.store.etcd!;
      return createEtcdStore({
        hosts: etcd.hosts,
        prefix: etcd.prefix,
        requestTimeoutMs: etcd.timeoutMs,
        username: etcd.user,
        password: etcd.password,
        role: config.deployment.role,
      });
    }
  }
}

/** Whether the agent, not the primary, is where configuration changes come from. */
export function agentIsSource(config: PalisadeConfig): boolean {
  return config.store.type === 'etcd';
}
