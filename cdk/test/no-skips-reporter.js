/**
 * Under the project's test script (DORMANT_NO_SKIPS=1, set by scripts/test) a test that skips
 * itself fails the run: it would pass without checking anything (e.g. DORMANT_BIN pointing at no
 * binary, a fixture directory gone). Run cdk/test.sh alone and such tests may skip.
 */
const path = require('path');

class NoSkipsReporter {
  constructor() {
    this.skipped = [];
  }

  onRunComplete(_contexts, results) {
    for (const file of results.testResults) {
      for (const t of file.testResults) {
        if (t.status !== 'passed' && t.status !== 'failed') {
          this.skipped.push(`${path.relative(process.cwd(), file.testFilePath)}: ${t.fullName} (${t.status})`);
        }
      }
    }
    if (this.skipped.length > 0) {
      console.error(`\nDORMANT_NO_SKIPS: ${this.skipped.length} test(s) did not run:\n  ${this.skipped.join('\n  ')}\n`);
    }
  }

  getLastError() {
    return this.skipped.length > 0 ? new Error(`${this.skipped.length} test(s) skipped themselves`) : undefined;
  }
}

module.exports = NoSkipsReporter;
