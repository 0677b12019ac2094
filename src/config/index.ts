export type {
  AdminKeyConfig,
  AdminRole,
  DeploymentRole,
  EtcdConfig,
  ListenAddress,
  PalisadeConfig,
  PluginsConfig,
  ProxyLimits,
  SharedDictConfig,
  StoreType,
} from './types';
export { DEFAULT_CONFIG_PATH, loadConfig, resolveConfigPath } from './load';
export type { LoadOptions } from './load';
export { ADMIN_KEY_FILE, adminKeyPath, readStoredAdminKey, resolveAdminKeys } from './admin-key';
export { formatAddress } from './format';
