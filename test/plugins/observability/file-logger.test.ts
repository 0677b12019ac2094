import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import fileLogger, { reopenFileLogs } from '../../../src/plugins/builtin/file-logger';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('file-logger', () => {
  const directory = mkdtempSync(join(tmpdir(), 'palisade-file-logger-'));
  after(async () => {
    await reopenFileLogs();
    rmSync(directory, { recursive: true, force: true });
  });

  it('appends one JSON line per request, batched, to the file', async () => {
    const path = join(directory, 'access.log');
    const conf = compilePluginConf(fileLogger, { path, batch_max_size: 10 });
    for (const uri of ['/a', '/b', '/c']) fileLogger.log!(conf, testContext({ uri, routeId: 'r7' }));
    await conf.batches.flush();
    const entries = lines(path);
    assert.deepEqual(
      entries.map((entry) => (entry.request as { uri: string }).uri),
      ['/a', '/b', '/c'],
    );
    assert.equal(entries[0].route_id, 'r7');
    // Appends: a second configuration on the same path adds after the first.
    const second = compilePluginConf(fileLogger, { path, log_format: { uri: '$uri' } });
    fileLogger.log!(second, testContext({ uri: '/d' }));
    await second.batches.close();
    await conf.batches.close();
    assert.deepEqual(lines(path).at(-1), { uri: '/d' });
    assert.equal(lines(path).length, 4);
  });

  it('logs only requests matching `match`', async () => {
    const path = join(directory, 'matched.log');
    const conf = compilePluginConf(fileLogger, { path, match: [['arg_log', '==', 'yes']], log_format: { u: '$uri' } });
    fileLogger.log!(conf, testContext({ uri: '/skip?log=no' }));
    fileLogger.log!(conf, testContext({ uri: '/keep?log=yes' }));
    await conf.batches.close();
    assert.deepEqual(lines(path), [{ u: '/keep' }]);
  });

  it('reopens the file after it was rotated away', async () => {
    const path = join(directory, 'rotated.log');
    const conf = compilePluginConf(fileLogger, { path, log_format: { u: '$uri' } });
    fileLogger.log!(conf, testContext({ uri: '/before' }));
    await conf.batches.flush();
    renameSync(path, path + '.1');
    fileLogger.log!(conf, testContext({ uri: '/after' }));
    await conf.batches.flush();
    assert.deepEqual(lines(path + '.1'), [{ u: '/before' }]);
    assert.deepEqual(lines(path), [{ u: '/after' }]);

    await reopenFileLogs();
    fileLogger.log!(conf, testContext({ uri: '/reopened' }));
    await conf.batches.close();
    assert.deepEqual(lines(path), [{ u: '/after' }, { u: '/reopened' }]);
  });

  it('drops (and counts) a batch it cannot write', async () => {
    const conf = compilePluginConf(fileLogger, { path: join(directory, 'missing-dir', 'x.log') });
    fileLogger.log!(conf, testContext());
    await conf.batches.flush();
    assert.equal(conf.batches.stats().dropped, 1);
    await conf.batches.close();
  });

  it('rejects misconfigurations', () => {
    assert.deepEqual(checkPluginConf(fileLogger, {}), { ok: false, error: 'property "path" is required' });
    const bad = checkPluginConf(fileLogger, { path: '/tmp/x', match: [['a', 'nope', 1]] });
    assert.equal(bad.ok, false);
    assert.match((bad as { error: string }).error, /^failed to validate the 'match' expression: /);
  });
});
