// Configuration stores: the embedded file store (read-write, the default), the
// standalone YAML store (read-only) and the etcd store (shared by several
// gateways, in APISIX's layout). All implement ConfigStore.

export { createEmbeddedStore, EmbeddedStore } from './embedded';
export { createEtcdStore, DEFAULT_ETCD_PREFIX, etcdOptionsFromEnv, EtcdStore, type EtcdStoreOptions } from './etcd';
export { createStandaloneStore, parseStandaloneConfig, StandaloneStore, type StandaloneOptions } from './standalone';
export * from './types';
