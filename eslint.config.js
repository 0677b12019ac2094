// Flat ESLint config: the recommended JavaScript and typescript-eslint rules
// (not type-aware, so lint stays fast), with formatting left to Prettier.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');

const nodeGlobals = {
  require: 'readonly',
  module: 'writable',
  exports: 'writable',
  __dirname: 'readonly',
  __filename: 'readonly',
  process: 'readonly',
  console: 'readonly',
  Buffer: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
  setInterval: 'readonly',
  clearInterval: 'readonly',
  setImmediate: 'readonly',
};

module.exports = tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'bench/results/', 'native/fuzz/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended.map((config) => ({ ...config, files: ['**/*.ts'] })),
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: nodeGlobals },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // `_`-prefixed names mark arguments and bindings kept on purpose.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      // Bit tricks on the hot path are intentional.
      'no-bitwise': 'off',
      // Control characters appear in HTTP parsing regexes.
      'no-control-regex': 'off',
      // Wrapped errors here carry the cause's message in their own text.
      'preserve-caught-error': 'off',
    },
  },
);
