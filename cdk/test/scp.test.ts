import * as fs from 'fs';
import * as path from 'path';
import { buildScp, DEFAULT_SCP_OPTIONS, privilegedPrincipalArns, renderScp, SCP_SIZE_LIMIT } from '../lib/scp';

const FILE = path.join(__dirname, '..', 'scp', 'dormant-tags-scp.json');
const committed = fs.readFileSync(FILE, 'utf8');
type Statement = { Sid: string; Effect: string; Action: string[]; Resource: string | string[]; Condition: Record<string, Record<string, string[]>> };
const statements = (JSON.parse(committed) as { Statement: Statement[] }).Statement;

describe('sample SCP (scp/dormant-tags-scp.json)', () => {
  test('the committed file is what lib/scp.ts generates (`npm run scp`)', () => {
    expect(committed).toBe(renderScp());
  });

  test('fits the SCP size limit (5,120 characters, whitespace included)', () => {
    expect(committed.length).toBeLessThanOrEqual(SCP_SIZE_LIMIT);
  });

  test('is deny-only, with no NotAction/NotResource', () => {
    for (const s of statements) {
      expect(s.Effect).toBe('Deny');
      expect(Object.keys(s).sort()).toEqual(['Action', 'Condition', 'Effect', 'Resource', 'Sid']);
    }
  });

  test('denies dormant:* tag writes (and creating identities with them) unless the principal is privileged', () => {
    const s = statements.find((x) => x.Sid === 'DenyDormantTagWritesExceptAdmins')!;
    expect(s.Action.sort()).toEqual(['iam:CreateRole', 'iam:CreateUser', 'iam:TagRole', 'iam:TagUser', 'iam:UntagRole', 'iam:UntagUser']);
    expect(s.Condition['ForAnyValue:StringLike']).toEqual({ 'aws:TagKeys': ['dormant:*'] });
    expect(s.Condition.ArnNotLike).toEqual({ 'aws:PrincipalArn': privilegedPrincipalArns() });
  });

  test('protects the quarantine through the dormant:stage tag (IAM has no policy-name condition key)', () => {
    // The tag's value starts with the stage: `quarantined next delete at 2026-12-20T04:00:00Z`.
    const s = statements.find((x) => x.Sid === 'DenyInlinePolicyChangesOnQuarantinedIdentities')!;
    expect(s.Action.sort()).toEqual(['iam:DeleteRolePolicy', 'iam:DeleteUserPolicy', 'iam:PutRolePolicy', 'iam:PutUserPolicy']);
    expect(s.Condition.StringLike).toEqual({ 'aws:ResourceTag/dormant:stage': ['quarantined*', 'keys_deactivated*', 'pending_delete*'] });
    expect(s.Condition.ArnNotLike).toEqual({ 'aws:PrincipalArn': privilegedPrincipalArns() });
  });

  test('the privileged principals include dormant\'s own roles', () => {
    for (const role of ['dormant-controller', 'dormant-member', 'dormant-automation', 'dormant-answers']) {
      expect(privilegedPrincipalArns()).toContain(`arn:*:iam::*:role/${role}`);
    }
  });

  test('only the admins and the deployments create or change a role bearing one of dormant\'s privileged names', () => {
    const s = statements.find((x) => x.Sid === 'DenyDormantRoleChangesExceptDeployers')!;
    expect(s.Resource).toBe('arn:*:iam::*:role/dormant-*');
    for (const action of ['iam:CreateRole', 'iam:UpdateAssumeRolePolicy', 'iam:PutRolePolicy', 'iam:AttachRolePolicy', 'iam:DetachRolePolicy', 'iam:DeleteRolePermissionsBoundary']) {
      expect(s.Action).toContain(action);
    }
    const allowed = s.Condition.ArnNotLike['aws:PrincipalArn'];
    expect(allowed).toContain('arn:*:iam::*:role/security-admin');
    expect(allowed).toContain('arn:*:iam::*:role/stacksets-exec-*');
    expect(allowed.filter((a) => /role\/dormant-/.test(a))).toEqual([]);
  });

  test('other principals and stages can be configured', () => {
    const doc = buildScp({ ...DEFAULT_SCP_OPTIONS, adminPrincipalArns: ['arn:aws:iam::*:role/x'], quarantinedStages: ['quarantined'] }) as { Statement: Statement[] };
    const quarantine = doc.Statement.find((x) => x.Sid === 'DenyInlinePolicyChangesOnQuarantinedIdentities')!;
    expect(quarantine.Condition.StringLike['aws:ResourceTag/dormant:stage']).toEqual(['quarantined*']);
    expect(quarantine.Condition.ArnNotLike['aws:PrincipalArn'][0]).toBe('arn:aws:iam::*:role/x');
  });

  test('renamed roles are privileged, guarded like dormant-* and the automation role is theirs', () => {
    const roleNames = { ...DEFAULT_SCP_OPTIONS.roleNames, answers: 'acme-answers', automation: 'acme-automation' };
    const doc = buildScp({ ...DEFAULT_SCP_OPTIONS, roleNames }) as { Statement: Statement[] };
    const sid = (id: string) => doc.Statement.find((x) => x.Sid === id)!;
    const tags = sid('DenyDormantTagWritesExceptAdmins').Condition.ArnNotLike['aws:PrincipalArn'];
    expect(tags).toContain('arn:*:iam::*:role/acme-answers');
    expect(tags).toContain('arn:*:iam::*:role/acme-automation');
    expect(tags).not.toContain('arn:*:iam::*:role/dormant-answers');
    expect(sid('DenyDormantRoleChangesExceptDeployers').Resource).toEqual([
      'arn:*:iam::*:role/dormant-*',
      'arn:*:iam::*:role/acme-automation',
      'arn:*:iam::*:role/acme-answers',
    ]);
    expect(sid('DenyDormantAutomationUseExceptDormant').Resource[0]).toBe('arn:*:iam::*:role/acme-automation');
  });

  test('only dormant\'s roles and the admins pass the automation role or change its documents', () => {
    const s = statements.find((x) => x.Sid === 'DenyDormantAutomationUseExceptDormant')!;
    expect(s.Action).toContain('iam:PassRole');
    expect(s.Action).toContain('ssm:UpdateDocument');
    expect(s.Resource).toEqual(['arn:*:iam::*:role/dormant-automation', 'arn:*:ssm:*:*:document/Dormant-*']);
    expect(s.Condition.ArnNotLike).toEqual({ 'aws:PrincipalArn': privilegedPrincipalArns() });
  });
});
