import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs, UsageError } from '../../src/cli/args';

test('commands and options', () => {
  assert.deepEqual(parseArgs(['start', '-c', 'x.yaml']), { command: 'start', configPath: 'x.yaml', json: false });
  assert.deepEqual(parseArgs(['status', '--json', '--config=y.yaml']), {
    command: 'status',
    configPath: 'y.yaml',
    json: true,
  });
  assert.equal(parseArgs(['stop', '--timeout', '5']).timeoutSeconds, 5);
  assert.equal(parseArgs([]).command, 'help');
  assert.equal(parseArgs(['--help']).command, 'help');
  assert.equal(parseArgs(['-v']).command, 'version');
});

test('usage errors', () => {
  assert.throws(() => parseArgs(['launch']), UsageError);
  assert.throws(() => parseArgs(['start', '-c']), /needs a value/);
  assert.throws(() => parseArgs(['start', '--fast']), /unknown option/);
  assert.throws(() => parseArgs(['stop', 'now']), /unexpected argument/);
});
