// bench-body-filter: bench:plugins' controls for the gzip plugin in part b.
// Both hold the whole response body for body_filter, as gzip does, and both
// run on the proxying thread:
//   - `mode: gzip` compresses it there (level 1, gzip's default chunk size), as
//     a gateway without an offload pool would: what the pool spares the other
//     routes;
//   - `mode: first-bytes` sends only its first `bytes` bytes (the size gzip
//     makes of the bench's body) and does no CPU-heavy work: what holding and
//     reading a 1 MiB body costs them with the compression taken away.
// Loaded as a custom plugin (plugin_dir: dist/bench/custom-plugins); not part
// of the gateway. It acts on every 200 response to a client that accepts gzip.

import { gzipSync } from 'node:zlib';

import type { PluginModule } from '../../src/plugins/types';

const NAME = 'bench-body-filter';

interface BodyFilterConf {
  readonly mode: 'gzip' | 'first-bytes';
  readonly bytes: number;
}

const benchBodyFilter: PluginModule<BodyFilterConf> = {
  name: NAME,
  version: '0.1',
  priority: 995,
  schema: {
    type: 'object',
    properties: {
      mode: { enum: ['gzip', 'first-bytes'] },
      bytes: { type: 'integer', minimum: 0, default: 6656 },
    },
    required: ['mode'],
  },

  header_filter(conf, ctx) {
    if (ctx.status !== 200 || !(ctx.header('accept-encoding') ?? '').includes('gzip')) return undefined;
    ctx.scratch(NAME).hold = true;
    if (conf.mode === 'gzip') ctx.setResponseHeader('content-encoding', 'gzip');
    ctx.setResponseHeader('content-length', null);
    return undefined;
  },

  body_filter(conf, ctx, body) {
    if (ctx.scratch(NAME).hold !== true) return undefined;
    return conf.mode === 'gzip' ? gzipSync(body, { level: 1, chunkSize: 4096 }) : body.subarray(0, conf.bytes);
  },
};

export default benchBodyFilter;
