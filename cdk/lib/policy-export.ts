/**
 * The identity roles' policies as synthesized, with CloudFormation intrinsics resolved for fixed
 * test accounts, for the Rust enforcement suite (../tests/enforcement.rs), which creates the roles
 * from them in the emulator and runs dormant as them. test/policy-export.test.ts keeps the copies
 * in ../tests/fixtures/policies/ equal to what the stacks synthesize (DORMANT_BLESS=1 rewrites).
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { DormantStack, LambdaAsset, PLACEHOLDER_ASSET } from './dormant-stack';
import { DormantMemberStack } from './member-stack';

/** Accounts and names the exported documents are resolved for (the Rust suite rewrites the ids). */
export const EXPORT = {
  partition: 'aws',
  region: 'us-east-1',
  controllerAccount: '111111111111',
  memberAccount: '222222222222',
  /** Physical names for the resources CloudFormation would name. */
  tableName: 'dormant-state',
  sweepQueueName: 'dormant-sweep',
  deadLetterQueueName: 'dormant-dlq',
  logGroupName: 'dormant-log',
  answerKeyName: 'AnswerSigningKeyB8C2D9E1-Xy7Zq1w2E3r4',
};

export const POLICIES_DIR = path.join(__dirname, '..', '..', 'tests', 'fixtures', 'policies');

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any
type Resources = Record<string, { Type: string; Properties?: Json }>;

/** Resolves Ref, Fn::GetAtt, Fn::Join and Fn::Select for `account`; throws on anything else. */
function resolver(resources: Resources, account: string, parameters: Record<string, string>) {
  const { partition, region } = EXPORT;
  const physical = (id: string): string => {
    const r = resources[id];
    if (!r) throw new Error(`no resource ${id}`);
    const p = r.Properties ?? {};
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        return p.TableName ?? EXPORT.tableName;
      case 'AWS::SQS::Queue':
        return p.QueueName ?? (/Sweep/.test(id) && !/Dead|Dlq/i.test(id) ? EXPORT.sweepQueueName : EXPORT.deadLetterQueueName);
      case 'AWS::IAM::Role':
        return p.RoleName;
      case 'AWS::SSM::Document':
        return p.Name;
      case 'AWS::Logs::LogGroup':
        return p.LogGroupName ?? EXPORT.logGroupName;
      case 'AWS::SecretsManager::Secret':
        // Ref gives a secret's ARN: Secrets Manager adds `-` and six random characters to the
        // name CloudFormation generated (one `-`, as CDK's parse of the name expects).
        return `arn:${partition}:secretsmanager:${region}:${account}:secret:${EXPORT.answerKeyName}-AbCdEf`;
      default:
        throw new Error(`cannot name ${r.Type} ${id}`);
    }
  };
  const arn = (id: string): string => {
    const r = resources[id];
    const name = physical(id);
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        return `arn:${partition}:dynamodb:${region}:${account}:table/${name}`;
      case 'AWS::SQS::Queue':
        return `arn:${partition}:sqs:${region}:${account}:${name}`;
      case 'AWS::IAM::Role':
        return `arn:${partition}:iam::${account}:role/${name}`;
      case 'AWS::Logs::LogGroup':
        return `arn:${partition}:logs:${region}:${account}:log-group:${name}:*`;
      default:
        throw new Error(`no ARN for ${r.Type} ${id}`);
    }
  };
  const pseudo: Record<string, string> = {
    'AWS::Partition': partition,
    'AWS::Region': region,
    'AWS::AccountId': account,
    'AWS::URLSuffix': 'amazonaws.com',
    ...parameters,
  };
  const resolve = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v === null || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'Ref') return pseudo[v.Ref] ?? physical(v.Ref);
    if (keys.length === 1 && keys[0] === 'Fn::GetAtt') {
      const [id, attr] = v['Fn::GetAtt'];
      if (attr !== 'Arn') throw new Error(`Fn::GetAtt ${id}.${attr}`);
      return arn(id);
    }
    if (keys.length === 1 && keys[0] === 'Fn::Join') {
      const [sep, parts] = v['Fn::Join'];
      return (resolve(parts) as string[]).join(sep);
    }
    if (keys.length === 1 && keys[0] === 'Fn::Select') {
      const [n, list] = v['Fn::Select'];
      return resolve(list)[n];
    }
    if (keys.length === 1 && keys[0] === 'Fn::Split') {
      const [sep, s] = v['Fn::Split'];
      return String(resolve(s)).split(sep);
    }
    if (keys.some((k) => k.startsWith('Fn::'))) throw new Error(`cannot resolve ${JSON.stringify(v)}`);
    return Object.fromEntries(keys.map((k) => [k, resolve(v[k])]));
  };
  return resolve;
}

/** One role as the suite creates it: name, trust policy, and its policies by name. */
export interface ExportedRole {
  readonly account: string;
  readonly roleName: string;
  readonly trust: Json;
  readonly policies: Record<string, Json>;
}

function exportRoles(template: Json, account: string, parameters: Record<string, string>): Record<string, ExportedRole> {
  const resources = template.Resources as Resources;
  const resolve = resolver(resources, account, parameters);
  const out: Record<string, ExportedRole> = {};
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::IAM::Role' || !r.Properties?.RoleName) continue;
    const policies: Record<string, Json> = {};
    for (const p of r.Properties.Policies ?? []) policies[p.PolicyName] = resolve(p.PolicyDocument);
    for (const [pid, p] of Object.entries(resources)) {
      // CDK moves what does not fit the role's default policy into attached managed policies
      // (…OverflowPolicy…): they grant as much, so they are exported too.
      if (p.Type !== 'AWS::IAM::Policy' && p.Type !== 'AWS::IAM::ManagedPolicy') continue;
      if ((p.Properties.Roles ?? []).some((ref: Json) => ref.Ref === id)) policies[pid] = resolve(p.Properties.PolicyDocument);
    }
    if ((r.Properties.ManagedPolicyArns ?? []).length > 0) throw new Error(`${id}: managed policies are not exported`);
    out[r.Properties.RoleName] = { account, roleName: r.Properties.RoleName, trust: resolve(r.Properties.AssumeRolePolicyDocument), policies };
  }
  return out;
}

/**
 * Synthesizes both stacks as the suite deploys them (one member account, sweep fan-out, the SSM
 * documents, owners' answers) and returns file name → content for tests/fixtures/policies/.
 */
export function exportPolicies(lambdaAsset: LambdaAsset = { path: PLACEHOLDER_ASSET, placeholder: true }): Record<string, string> {
  const app = new App();
  const controller = new DormantStack(app, 'DormantStack', {
    memberAccounts: [EXPORT.memberAccount],
    sweepFanOut: true,
    answers: true,
    lambdaAsset,
  });
  const member = new DormantMemberStack(app, 'DormantMemberStack', { controllerAccountId: EXPORT.controllerAccount, answers: true });
  const assembly = app.synth();
  const c = exportRoles(assembly.getStackByName(controller.stackName).template, EXPORT.controllerAccount, {});
  const m = exportRoles(assembly.getStackByName(member.stackName).template, EXPORT.memberAccount, {
    ControllerAccountId: EXPORT.controllerAccount,
  });
  const file = (v: Json) => `${JSON.stringify(v, null, 2)}\n`;
  const out: Record<string, string> = {};
  for (const [name, role] of Object.entries(c)) out[`controller-account.${name}.json`] = file(role);
  for (const [name, role] of Object.entries(m)) out[`member-account.${name}.json`] = file(role);
  out['names.json'] = file(EXPORT);
  return out;
}

/** Writes the export into `dir` (removing files it no longer has). */
export function writePolicies(dir: string = POLICIES_DIR): string[] {
  const files = exportPolicies();
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.json') && !(f in files)) fs.unlinkSync(path.join(dir, f));
  for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), content);
  return Object.keys(files);
}
