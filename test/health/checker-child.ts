// The active checker in its own process, as the agent runs it, for tests that
// share its dictionary with a DataPlane in another process.
// Env: PALISADE_TEST_BACKEND (ffi|napi), PALISADE_TEST_DICT (the dictionary's
// file, already created), PALISADE_TEST_CONFIG (TestConfig JSON). Prints
// {"ready":true} once checking; stops the checks and exits on SIGTERM.
import { startActiveHealthChecks } from '../../src/health';
import { loadBackend, type BackendName } from '../../src/native';
import { openSharedDict } from '../../src/native/shdict';
import { snapshot, type TestConfig } from '../helpers/dataplane';

function main(): void {
  const backend = loadBackend((process.env.PALISADE_TEST_BACKEND ?? 'ffi') as BackendName);
  const dict = openSharedDict(backend, 'health', 0, { path: process.env.PALISADE_TEST_DICT });
  const config = JSON.parse(process.env.PALISADE_TEST_CONFIG ?? '{}') as TestConfig;
  const checker = startActiveHealthChecks({ dict });
  checker.update(snapshot(config));
  // The checker's timers do not hold the process open; this does, until SIGTERM.
  const alive = setInterval(() => {}, 1000);
  process.once('SIGTERM', () => {
    clearInterval(alive);
    void checker.stop().then(() => {
      dict.close();
      process.exit(0);
    });
  });
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
}

main();
