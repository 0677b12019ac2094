// bench-gzip-inline: bench:plugins' contrast to the gzip plugin. It compresses
// the same way (gzip level 1) but on the proxying thread, as a gateway without
// an offload pool would, so part b can show what the pool saves the other
// routes. Loaded as a custom plugin (plugin_dir: dist/bench/custom-plugins); not
// part of the gateway. It compresses every 200 response of a client that
// accepts gzip (the bench route serves only the 1 MiB body), with the gzip
// plugin's defaults for level and chunk size.

import { gzipSync } from 'node:zlib';

import type { PluginModule } from '../../src/plugins/types';

const NAME = 'bench-gzip-inline';

const gzipInline: PluginModule = {
  name: NAME,
  version: '0.1',
  priority: 995,
  schema: { type: 'object' },

  header_filter(_conf, ctx) {
    if (ctx.status !== 200 || !(ctx.header('accept-encoding') ?? '').includes('gzip')) return undefined;
    ctx.scratch(NAME).compress = true;
    ctx.setResponseHeader('content-encoding', 'gzip');
    ctx.setResponseHeader('content-length', null);
    return undefined;
  },

  body_filter(_conf, ctx, body) {
    return ctx.scratch(NAME).compress === true ? gzipSync(body, { level: 1, chunkSize: 4096 }) : undefined;
  },
};

export default gzipInline;
