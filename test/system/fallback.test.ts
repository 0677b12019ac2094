// With PALISADE_NATIVE_BACKEND=ffi but no native build, the gateway still
// starts: on the pure TypeScript backend, with a warning that says so.
// The native library is made "missing" by running a copy of the package that
// has dist/ but no build/ (the library path is derived from the package root).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import {
  cleanup,
  makeHome,
  putRoute,
  readAdminKey,
  readStatus,
  request,
  ROOT,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
} from './harness';

const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-nobuild-'));
after(async () => {
  await cleanup();
  fs.rmSync(copy, { recursive: true, force: true });
});

test('ffi requested without a native build: starts on js with a warning', { timeout: 60_000 }, async () => {
  fs.cpSync(path.join(ROOT, 'dist', 'src'), path.join(copy, 'dist', 'src'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'bin'), path.join(copy, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  assert.ok(!fs.existsSync(path.join(copy, 'build')));

  const upstream = await startUpstream();
  const home = await makeHome({ backend: 'ffi' });
  const gateway = await startGateway(home, { root: copy, env: { PALISADE_NATIVE_BACKEND: 'ffi' } });
  try {
    assert.match(gateway.stderr(), /native backend "ffi" is unavailable/);
    const status = await waitFor('the status file', 5000, () => readStatus(home));
    assert.equal(status.backend, 'js');

    const key = readAdminKey(home);
    assert.equal((await putRoute(home, key, '1', '/hello', upstream.port)).status, 201);
    const response = await waitFor('traffic on the js backend', 5000, async () => {
      const result = await request(`${home.proxyUrl}/hello`);
      return result.status === 200 ? result : undefined;
    });
    assert.equal(response.body, 'upstream:/hello');
  } finally {
    assert.equal((await stopGateway(gateway)).code, 0);
    await upstream.close();
  }
});
