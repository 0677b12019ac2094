// The config store the primary owns, chosen by `store.type`. etcd joins here.

import type { PalisadeConfig } from '../config/types';
import type { Logger } from '../core/log';
import { createEmbeddedStore, createStandaloneStore } from '../store';
import type { ConfigStore } from '../store/types';

export function createConfigStore(config: PalisadeConfig, log: Logger): ConfigStore {
  switch (config.store.type) {
    case 'embedded':
      return createEmbeddedStore(config.store.dataDir);
    case 'standalone':
      return createStandaloneStore(config.store.standaloneFile, {
        onError: (message) => log.error('standalone config rejected; keeping the previous one', { message }),
      });
  }
}
