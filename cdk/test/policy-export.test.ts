import * as fs from 'fs';
import * as path from 'path';
import { FALLBACK_RUN_ACTIONS } from '../lib/fallback';
import { controllerActions, loadPermissions } from '../lib/permissions';
import { exportPolicies, POLICIES_DIR, writePolicies } from '../lib/policy-export';

// The Rust enforcement suite (tests/enforcement.rs) runs dormant as roles built from these files:
// they must be what the stacks synthesize, or the suite proves nothing about the deployed roles.
describe('tests/fixtures/policies', () => {
  const files = exportPolicies();

  test('equal what the stacks synthesize (DORMANT_BLESS=1 or `npm run policies` rewrites them)', () => {
    if (process.env.DORMANT_BLESS === '1') writePolicies();
    const committed = fs.readdirSync(POLICIES_DIR).filter((f) => f.endsWith('.json')).sort();
    expect(committed).toEqual(Object.keys(files).sort());
    const stale = Object.entries(files)
      .filter(([f, content]) => fs.readFileSync(path.join(POLICIES_DIR, f), 'utf8') !== content)
      .map(([f]) => f);
    if (stale.length > 0) throw new Error(`stale: ${stale.join(', ')}; run \`npm run policies\` in cdk/ (or DORMANT_BLESS=1 npx jest)`);
  });

  test('no intrinsic is left unresolved', () => {
    for (const content of Object.values(files)) expect(content).not.toMatch(/"(Ref|Fn::[A-Za-z]+)"/);
  });
});

describe('the fallback grant', () => {
  test('is permissions.json `controller.ssm` plus iam:PassRole', () => {
    const permissions = loadPermissions();
    expect([...FALLBACK_RUN_ACTIONS].sort()).toEqual([...controllerActions(permissions, 'ssm'), 'iam:PassRole'].sort());
    expect(permissions.controller.iam).toContain('iam:PassRole');
  });
});
