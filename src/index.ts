// Palisade as a library: the gateway runner, its configuration, and the
// native backends. The `palisade` command is in src/cli.
export { loadConfig, resolveConfigPath, DEFAULT_CONFIG_PATH } from './config';
export type { PalisadeConfig, ListenAddress, ProxyLimits, LoadOptions } from './config';
export { Primary, runGateway } from './gateway';
export type { GatewayStatus } from './gateway';
export { loadBackend, selectBackend } from './native';
export type { BackendName, NativeBackend } from './native';
export { HeaderName, headerName } from './dataplane/header-name';
