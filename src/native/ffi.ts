import type { NativeBackend } from './backend';
import { sharedLibraryPath } from './paths';

// koffi ships ESM type declarations; its CommonJS entry is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require('koffi') as typeof import('koffi', { with: { 'resolution-mode': 'import' } }).default;

// The default backend: libpalisade.so through koffi. Buffer + offset + length
// arguments are used throughout because passing a Buffer costs ~100 ns while a
// JS string argument (or Buffer.from per call) costs several times that.
export function loadFfiBackend(libraryPath = sharedLibraryPath): NativeBackend {
  const lib = koffi.load(libraryPath);
  const parseRequest = lib.func(
    'int32_t pal_parse_request(const uint8_t *buf, uint32_t off, uint32_t len, int32_t router, const uint8_t *ip, uint32_t ip_len, _Out_ int32_t *out)',
  );
  const parseResponse = lib.func(
    'int32_t pal_parse_response(const uint8_t *buf, uint32_t off, uint32_t len, int32_t req_method, _Out_ int32_t *out)',
  );
  const chunkedScan = lib.func(
    'int32_t pal_chunked_scan(const uint8_t *buf, uint32_t off, uint32_t len, _Inout_ int32_t *state)',
  );
  const routerBuild = lib.func('int32_t pal_router_build(const uint8_t *spec, uint32_t len)');
  const routerFree = lib.func('void pal_router_free(int32_t router)');

  return {
    name: 'ffi',
    parseRequest: (buf, off, len, router, ip, out) => parseRequest(buf, off, len, router, ip, ip.length, out),
    parseResponse: (buf, off, len, reqMethod, out) => parseResponse(buf, off, len, reqMethod, out),
    chunkedScan: (buf, off, len, state) => chunkedScan(buf, off, len, state),
    routerBuild: (spec) => routerBuild(spec, spec.length),
    routerFree: (router) => routerFree(router),
  };
}
