import { Match } from 'aws-cdk-lib/assertions';
import { nonIdentityActions } from '../lib/dormant-stack';
import { loadPermissions } from '../lib/permissions';
import { readRemediationDocs } from '../lib/ssm-documents';
import { asList, controller, member, roleStatements } from './helpers';

const hasDocuments = readRemediationDocs().length > 0;

describe("owners' answers (function URL + signing key)", () => {
  const { template } = controller({ answers: { baseUrl: 'https://answers.example.com' } });

  const functions = template.findResources('AWS::Lambda::Function');
  const [controllerId, controllerFn] = Object.entries(functions).find(([id]) => id.startsWith('Controller'))!;
  const [answersId, answersFn] = Object.entries(functions).find(([id]) => id.startsWith('Answers'))!;

  test('the function URL (no IAM auth) is on the answers function only', () => {
    template.resourceCountIs('AWS::Lambda::Url', 1);
    template.hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'NONE',
      TargetFunctionArn: { 'Fn::GetAtt': [answersId, 'Arn'] },
    });
    expect(JSON.stringify(template.findResources('AWS::Lambda::Url'))).not.toContain(controllerId);
    template.hasOutput('AnswerUrl', {});
  });

  test('each function has its own reserved concurrency: a flood of requests cannot take the controller\'s', () => {
    expect(controllerFn.Properties.ReservedConcurrentExecutions).toBe(3);
    expect(answersFn.Properties.ReservedConcurrentExecutions).toBe(2);
    const { template: custom } = controller({ answers: { reservedConcurrency: 5 } });
    const fns = Object.entries(custom.findResources('AWS::Lambda::Function'));
    expect(fns.find(([id]) => id.startsWith('Answers'))![1].Properties.ReservedConcurrentExecutions).toBe(5);
    expect(fns.find(([id]) => id.startsWith('Controller'))![1].Properties.ReservedConcurrentExecutions).toBe(3);
  });

  test("a flood of the public URL is alarmed: the answers function's throttles", () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    const throttles = alarms.find((a) => a.Properties.MetricName === 'Throttles');
    expect(throttles?.Properties.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: answersId } }]);
    expect(throttles?.Properties.Threshold).toBe(10);
  });

  test('the same binary, told which function it is; the same configuration', () => {
    expect(answersFn.Properties.Code).toEqual(controllerFn.Properties.Code);
    const vars = answersFn.Properties.Environment.Variables;
    expect(vars.DORMANT_FUNCTION).toBe('answers');
    expect(vars.DORMANT_MEMBER_ROLE_NAME).toBe('dormant-answers');
    expect(vars.DORMANT_CONFIG).toEqual(controllerFn.Properties.Environment.Variables.DORMANT_CONFIG);
    expect(controllerFn.Properties.Environment.Variables.DORMANT_FUNCTION).toBeUndefined();
    expect(answersFn.Properties.Role).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^AnswersRole/), 'Arn'] });
  });

  test("the answers role has only what the answer path calls: none of the controller's sweep, SSM, queue or discovery rights", () => {
    const statements = roleStatements(template, 'AnswersRole');
    const allowed = new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)));
    const { template: discovering } = controller({ answers: true, config: { organization: { enabled: true } }, notify: { sesIdentity: 'dormant@example.com' } });
    const withAll = new Set(roleStatements(discovering, 'AnswersRole').flatMap((s) => asList(s.Action)));
    for (const forbidden of [
      'ssm:StartAutomationExecution',
      'iam:PassRole',
      'sqs:SendMessage',
      'sqs:ReceiveMessage',
      'access-analyzer:GetFinding',
      // The ladder's own steps: quarantine, keys off, deletion.
      'iam:AttachRolePolicy',
      'iam:AttachUserPolicy',
      'iam:DeleteRole',
      'iam:DeleteUser',
      'iam:DeleteAccessKey',
      'iam:DeleteLoginProfile',
    ]) {
      expect(allowed).not.toContain(forbidden);
      expect(withAll).not.toContain(forbidden);
    }
    expect([...allowed].filter((a) => a.startsWith('organizations:'))).toEqual([]);
    // What it does call: the record, the claim, the release, events, the key, stopping an SSM
    // execution an Undo reverses, and the role of each member account.
    for (const needed of ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'iam:UpdateAccessKey', 'iam:DetachRolePolicy', 'events:PutEvents',
      'secretsmanager:GetSecretValue', 'ssm:GetParameter', 'ssm:StopAutomationExecution', 'sts:AssumeRole']) {
      expect(allowed).toContain(needed);
    }
    // Discovery and owner messages only when the stack has them (a release tells the owner).
    expect(withAll).toContain('organizations:ListAccounts');
    expect(withAll).toContain('ses:SendEmail');
    expect(allowed).not.toContain('ses:SendEmail');
    const assume = statements.find((s) => s.Sid === 'AssumeMemberRoles');
    expect(JSON.stringify(assume?.Resource)).toContain(':role/dormant-answers');
    expect(JSON.stringify(assume?.Resource)).not.toContain('dormant-member');
  });

  test('Keep writes only the exemption tags; the controller may not write them', () => {
    const statements = roleStatements(template, 'AnswersRole');
    const keep = statements.find((s) => s.Sid === 'KeepWritesExemptionTags');
    expect(keep?.Condition).toEqual({
      'ForAllValues:StringLike': { 'aws:TagKeys': ['dormant:exempt', 'dormant:exempt-until', 'dormant:exempt-reason'] },
      StringEquals: { 'aws:RequestTag/dormant:exempt': 'true' },
      Null: { 'aws:TagKeys': 'false', 'aws:RequestTag/dormant:exempt': 'false' },
    });
    // The only statements that let it tag: it cannot write a stage or marker tag in any spelling.
    const tagging = statements.filter((s) => s.Effect === 'Allow' && asList(s.Action).some((a) => a === 'iam:TagRole' || a === 'iam:TagUser'));
    expect(tagging.map((s) => s.Sid)).toEqual(['KeepWritesExemptionTags']);
    expect(JSON.stringify(roleStatements(template, 'ControllerRole'))).not.toContain('dormant:exempt');
  });

  test("the answers role cannot mark an identity itself, so the guarded key and policy actions reach only identities dormant marked", () => {
    const statements = roleStatements(template, 'AnswersRole').filter((s) => s.Effect === 'Allow');
    const allowed = new Set(statements.flatMap((s) => asList(s.Action)));
    // No inline policy deleted (a human's deny on a marked role), ...
    expect(allowed).not.toContain('iam:DeleteRolePolicy');
    expect(allowed).not.toContain('iam:DeleteUserPolicy');
    // ... a policy detached only when it is dormant's quarantine on an identity dormant
    // quarantined (by the stage tag's value), ...
    const detach = statements.filter((st) => asList(st.Action).some((a) => a.startsWith('iam:Detach')));
    expect(detach.map((s) => s.Sid)).toEqual(['ReleaseLiftsDormantsQuarantine']);
    expect(JSON.stringify(detach[0].Condition)).toContain('DormantQuarantineDenyAll');
    expect((detach[0].Condition as Record<string, unknown>).StringLike).toEqual({ 'aws:ResourceTag/dormant:stage': ['quarantined*', 'keys_deactivated*', 'pending_delete*'] });
    // ... and keys turned on only where the stage tag says dormant turned them off (not through
    // the credentials marker, which any user with an unused key carries from its notice).
    const keys = statements.filter((s) => asList(s.Action).includes('iam:UpdateAccessKey'));
    expect(keys.map((s) => s.Sid)).toEqual(['ReleaseTurnsOnKeysDormantTurnedOff']);
    expect(keys[0].Condition).toEqual({ StringLike: { 'aws:ResourceTag/dormant:stage': ['keys_deactivated*', 'pending_delete*'] } });
    // Keep writes the exemption only as "true": never "false", never a date alone.
    const keep = statements.find((s) => s.Sid === 'KeepWritesExemptionTags');
    expect((keep?.Condition as Record<string, unknown>).StringEquals).toEqual({ 'aws:RequestTag/dormant:exempt': 'true' });
    // The protected roles are denied its tag changes too.
    const deny = roleStatements(template, 'AnswersRole').find((s) => s.Sid === 'NeverTouchProtectedRoles');
    expect(deny?.Effect).toBe('Deny');
    expect(asList(deny?.Action)).toEqual(expect.arrayContaining(['iam:TagRole', 'iam:UntagRole', 'iam:DetachRolePolicy']));
    expect(JSON.stringify(deny?.Resource)).toContain(':role/OrganizationAccountAccessRole');
    // One policy document: no overflow policy (which would count against the role's 10 managed policies).
    expect(Object.keys(template.findResources('AWS::IAM::ManagedPolicy')).filter((id) => id.startsWith('AnswersRoleOverflow'))).toEqual([]);
  });

  test('the answers role and function are protected like the others', () => {
    const deny = roleStatements(template, 'AnswersRole').find((s) => s.Sid === 'NeverTouchProtectedRoles');
    expect(JSON.stringify(deny?.Resource)).toContain(':role/dormant-answers');
    expect(JSON.stringify(roleStatements(template, 'ControllerRole').find((s) => s.Sid === 'NeverTouchProtectedRoles')?.Resource)).toContain(
      ':role/dormant-answers',
    );
  });

  test('the member stack has the answers role only when asked, trusted by the answers role alone', () => {
    const { template: plain } = member();
    expect(Object.keys(plain.findResources('AWS::IAM::Role')).some((id) => id.startsWith('AnswersRole'))).toBe(false);
    const { template: m } = member({ answers: true });
    const role = Object.entries(m.findResources('AWS::IAM::Role')).find(([id]) => id.startsWith('AnswersRole'))![1];
    expect(role.Properties.RoleName).toBe('dormant-answers');
    const trust = JSON.stringify(role.Properties.AssumeRolePolicyDocument);
    expect(trust).toContain(':role/dormant-answers');
    expect(trust).not.toContain('dormant-controller');
    const actions = new Set(roleStatements(m, 'AnswersRole').filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)));
    for (const forbidden of ['ssm:StartAutomationExecution', 'iam:PassRole', 'iam:AttachRolePolicy', 'iam:DeleteRole', 'iam:DeleteUser']) {
      expect(actions).not.toContain(forbidden);
    }
    expect(actions).toContain('iam:UpdateAccessKey');
    expect(actions).toContain('ssm:StopAutomationExecution');
  });

  test('the signing key is a generated Secrets Manager secret the config points to', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: 64, ExcludePunctuation: true }),
    });
    const text = JSON.stringify(controllerFn.Properties.Environment.Variables.DORMANT_CONFIG);
    expect(text).toContain('\\"key_source\\":\\"secretsmanager:');
    expect(text).toContain('\\"base_url\\":\\"https://answers.example.com\\"');
  });

  test('the controller role reads that secret (it signs the links messages carry) and nothing more', () => {
    const statements = roleStatements(template, 'ControllerRole');
    const allowed = [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)))].sort();
    expect(allowed).toEqual([...loadPermissions().all, ...nonIdentityActions({ hasDocuments, answers: true })].sort());
    expect(statements.find((s) => s.Sid === 'ReadAnswerKey')?.Resource).toEqual({ Ref: expect.stringMatching(/^AnswerSigningKey/) });
    expect(JSON.stringify(statements.find((s) => s.Sid === 'ReadAnswerKeyThroughSsm')?.Resource)).toContain(
      'parameter/aws/reference/secretsmanager/',
    );
  });

  test("the answers role's name is in the config, so a renamed one is protected; it is not an override", () => {
    const configOf = (t: typeof template) =>
      JSON.stringify(Object.entries(t.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith('Controller'))![1].Properties.Environment.Variables.DORMANT_CONFIG);
    expect(configOf(template)).toContain('\\"role_name\\":\\"dormant-answers\\"');
    const { template: renamed } = controller({ answers: { roleName: 'owners-answers' } });
    expect(configOf(renamed)).toContain('\\"role_name\\":\\"owners-answers\\"');
    expect(() => controller({ answers: true, config: { answers: { role_name: 'x' } as never } })).toThrow(/answers.role_name/);
  });

  test('off by default: no URL, no secret, no answers function or role', () => {
    const { template: plain } = controller();
    plain.resourceCountIs('AWS::Lambda::Url', 0);
    plain.resourceCountIs('AWS::SecretsManager::Secret', 0);
    plain.resourceCountIs('AWS::Lambda::Function', 1);
    expect(Object.keys(plain.findResources('AWS::IAM::Role')).some((id) => id.startsWith('AnswersRole'))).toBe(false);
  });
});
