// A data plane in its own process, for tests that measure it from outside.
// Env: PALISADE_TEST_BACKEND (js|ffi|napi), PALISADE_TEST_CONFIG (TestConfig
// JSON), PALISADE_TEST_LIMITS (JSON). Prints {"port":N} when listening; exits
// on SIGTERM after a graceful close.
import { loadBackend, type BackendName } from '../../src/native';
import { DataPlane } from '../../src/dataplane/server';
import { snapshot, type TestConfig } from './dataplane';

async function main(): Promise<void> {
  const backend = loadBackend((process.env.PALISADE_TEST_BACKEND ?? 'js') as BackendName);
  const config = JSON.parse(process.env.PALISADE_TEST_CONFIG ?? '{}') as TestConfig;
  const limits = JSON.parse(process.env.PALISADE_TEST_LIMITS ?? '{}') as Record<string, number>;
  const dataPlane = new DataPlane(backend, { listen: [{ host: '127.0.0.1', port: 0 }], limits });
  dataPlane.applyConfig(snapshot(config));
  const [bound] = await dataPlane.listen();
  process.stdout.write(JSON.stringify({ port: bound.port }) + '\n');
  process.once('SIGTERM', () => {
    void dataPlane.close(1000).then(() => process.exit(0));
  });
}

void main();
