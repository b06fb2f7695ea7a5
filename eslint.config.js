'use strict';
// ESLint (npm run lint): the recommended rules, for CommonJS run by Node.
// ES2022 is the syntax of the oldest supported Node (18): code and tests
// both run there (test/platform-node-majors.test.js).

const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
  {
    // Built or installed, not written here.
    ignores: ['target/', 'node_modules/', 'build/', 'dist/', 'crates/*/fuzz/target/', '**/*.d.ts'],
  },
  js.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `const { omitted, ...rest } = obj` is how the code drops a key.
      'no-unused-vars': ['error', { ignoreRestSiblings: true }],
      // The style the code already keeps.
      'prefer-const': 'error',
      'no-var': 'error',
      eqeqeq: ['error', 'smart'],
      strict: ['error', 'safe'],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
];
