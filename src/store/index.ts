// Configuration stores: the embedded file store (read-write, the default) and
// the standalone YAML store (read-only). Both implement ConfigStore.

export { createEmbeddedStore, EmbeddedStore } from './embedded';
export { createStandaloneStore, parseStandaloneConfig, StandaloneStore, type StandaloneOptions } from './standalone';
export * from './types';
