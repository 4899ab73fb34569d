/** Jest runs the TypeScript tests through ts-jest; type checking is `tsc --noEmit` in test.sh. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 60000,
  // scripts/test sets DORMANT_NO_SKIPS=1: there a test that skips itself fails the run.
  reporters: process.env.DORMANT_NO_SKIPS === '1' ? ['default', '<rootDir>/test/no-skips-reporter.js'] : ['default'],
};
