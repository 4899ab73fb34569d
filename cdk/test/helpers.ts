import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DormantStack, DormantStackProps, PLACEHOLDER_ASSET } from '../lib/dormant-stack';
import { DormantMemberStack, DormantMemberStackProps } from '../lib/member-stack';
import { acknowledgeNagFindings } from '../lib/nag';

export const REPO_ROOT = path.join(__dirname, '..', '..');
export const EVENTS_DIR = path.join(__dirname, 'events');

/** Tests never pick up a locally built Lambda zip: the asset is always the placeholder. */
const PLACEHOLDER = { path: PLACEHOLDER_ASSET, placeholder: true };

export function controller(props: DormantStackProps = {}, acknowledge = true): { app: App; stack: DormantStack; template: Template } {
  const app = new App();
  const stack = new DormantStack(app, 'DormantStack', { lambdaAsset: PLACEHOLDER, ...props });
  if (acknowledge) acknowledgeNagFindings(stack);
  return { app, stack, template: Template.fromStack(stack) };
}

export function member(props: DormantMemberStackProps = {}, acknowledge = true): { app: App; stack: DormantMemberStack; template: Template } {
  const app = new App();
  const stack = new DormantMemberStack(app, 'DormantMemberStack', props);
  if (acknowledge) acknowledgeNagFindings(stack);
  return { app, stack, template: Template.fromStack(stack) };
}

export function loadEvent(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(EVENTS_DIR, `${name}.json`), 'utf8'));
}

/** A directory with the given files, removed after the test file finishes. */
export function tempDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dormant-cdk-'));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Sid?: string; Condition?: unknown };

/** The statements of every policy attached to the role with logical id prefix `rolePrefix`. */
export function roleStatements(template: Template, rolePrefix: string): Statement[] {
  // Also what CDK moves into attached overflow managed policies once the default policy is full.
  const policies = { ...template.findResources('AWS::IAM::Policy'), ...template.findResources('AWS::IAM::ManagedPolicy') };
  const out: Statement[] = [];
  for (const p of Object.values(policies)) {
    const roles: { Ref: string }[] = p.Properties.Roles ?? [];
    if (roles.some((r) => r.Ref.startsWith(rolePrefix))) out.push(...(p.Properties.PolicyDocument.Statement as Statement[]));
  }
  const role = Object.entries(template.findResources('AWS::IAM::Role')).find(([id]) => id.startsWith(rolePrefix));
  if (!role) throw new Error(`no role ${rolePrefix}`);
  for (const p of role[1].Properties.Policies ?? []) out.push(...(p.PolicyDocument.Statement as Statement[]));
  expectNoManagedPolicies(role[1]);
  return out;
}

function expectNoManagedPolicies(role: { [key: string]: any }): void {
  if ((role.Properties?.ManagedPolicyArns ?? []).length > 0) throw new Error('role has managed policies');
}

export const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

/**
 * EventBridge's input transformer: each `<name>` is replaced by the value at its InputPathsMap
 * path; outside double quotes a string value is inserted as a JSON string (quoted), inside quotes
 * its raw text is inserted.
 */
export function applyInputTransformer(
  t: { InputPathsMap: Record<string, string>; InputTemplate: string },
  event: Record<string, unknown>,
): unknown {
  const valueAt = (p: string): unknown => {
    if (!p.startsWith('$.')) throw new Error(`unsupported path ${p}`);
    return p
      .slice(2)
      .split('.')
      .reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), event);
  };
  const tpl = t.InputTemplate;
  let out = '';
  let inString = false;
  for (let i = 0; i < tpl.length; i++) {
    const ch = tpl[i];
    if (ch === '"' && tpl[i - 1] !== '\\') inString = !inString;
    const m = ch === '<' ? /^<([A-Za-z0-9_.-]+)>/.exec(tpl.slice(i)) : null;
    if (m && m[1] in t.InputPathsMap) {
      const v = valueAt(t.InputPathsMap[m[1]]);
      out += inString ? String(v) : JSON.stringify(v);
      i += m[0].length - 1;
    } else {
      out += ch;
    }
  }
  return JSON.parse(out);
}
