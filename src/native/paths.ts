import * as path from 'node:path';

// Build outputs of binding.gyp, relative to the package root. dist/src/native
// and src/native both sit three levels below the root.
const root = path.resolve(__dirname, '..', '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '');

export const packageRoot = root;
export const sharedLibraryPath = path.join(root, 'build', 'Release', 'libpalisade.so');
export const addonPath = path.join(root, 'build', 'Release', 'palisade_napi.node');
