// proxy.limits.plugin_release_grace: how long a compiled plugin configuration
// outlives the last route table using it before the plugin's release() runs.
// Unset, the data plane picks the longest read timeout (at least 60 s); set, it
// is a duration like the other limits, and a bad value stops the start naming it.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { PalisadeError } from '../../src/core/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-release-grace-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let configCount = 0;

/** Load a config.yaml whose proxy.limits.plugin_release_grace is `grace` (written as YAML as it is). */
function loadWithGrace(grace: string): ReturnType<typeof loadConfig> {
  const dir = path.join(tmp, String(++configCount), 'conf');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, `proxy:\n  limits:\n    plugin_release_grace: ${grace}\n`);
  return loadConfig({ configPath: file, env: {} });
}

describe('proxy.limits.plugin_release_grace', () => {
  it('is unset by default, leaving the grace to the data plane (longest read timeout, at least 60 s)', () => {
    const config = loadConfig({ env: { PALISADE_CONFIG: '' }, cwd: tmp });
    assert.equal(config.proxy.limits.pluginReleaseGraceMs, undefined);
  });

  const good: Array<[string, number]> = [
    ['90s', 90_000],
    ['120', 120_000],
    ['2.5', 2_500],
    ['500ms', 500],
    ['10m', 600_000],
    ['1ms', 1],
    ['2147483647ms', 2 ** 31 - 1],
  ];
  for (const [grace, ms] of good) {
    it(`takes ${grace} as ${ms} ms`, () => {
      assert.equal(loadWithGrace(grace).proxy.limits.pluginReleaseGraceMs, ms);
    });
  }

  it('leaves the other limits at their defaults', () => {
    const { limits } = loadWithGrace('30s').proxy;
    assert.deepEqual(limits, {
      maxHeadBytes: 32768,
      maxBodyBytes: 0,
      headTimeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      pluginReleaseGraceMs: 30_000,
    });
  });

  const bad: Array<[string, string, RegExp]> = [
    [
      'zero',
      '0',
      /config\.yaml: proxy\.limits\.plugin_release_grace must be at least 1ms \(0 would run a plugin's release\(\) under requests still running with its configuration\)$/,
    ],
    ['zero in ms', '0ms', /proxy\.limits\.plugin_release_grace must be at least 1ms/],
    ['a word', 'later', /proxy\.limits\.plugin_release_grace must be a duration such as 60s, 500ms or 2m/],
    ['negative', '-5', /proxy\.limits\.plugin_release_grace must be a duration/],
    ['a unit it does not know', '1h', /proxy\.limits\.plugin_release_grace must be a duration/],
    ['a list', '[60s]', /proxy\.limits\.plugin_release_grace must be a duration/],
    ['empty (null)', '', /proxy\.limits\.plugin_release_grace must be a duration/],
    [
      'longer than a timer can wait',
      '2147483648ms',
      /proxy\.limits\.plugin_release_grace must be at most 2147483647ms \(about 24 days; a longer timer would fire at once\)/,
    ],
    ['far too long', '100000m', /proxy\.limits\.plugin_release_grace must be at most 2147483647ms/],
  ];
  for (const [name, grace, message] of bad) {
    it(`refuses ${name} (${JSON.stringify(grace)}), naming the field`, () => {
      assert.throws(
        () => loadWithGrace(grace),
        (err: unknown) => {
          assert.ok(err instanceof PalisadeError, String(err));
          assert.equal(err.code, 'PAL_ERR_CONFIG');
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  it('is a key of proxy.limits, not of proxy', () => {
    const dir = path.join(tmp, 'misplaced', 'conf');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, 'proxy:\n  plugin_release_grace: 30s\n');
    assert.throws(
      () => loadConfig({ configPath: file, env: {} }),
      /proxy\.plugin_release_grace is not a known setting/,
    );
  });
});
