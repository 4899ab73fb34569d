import { createHash } from 'crypto';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { FALLBACK_ID, FALLBACK_RUN_ACTIONS, RemediationFallback } from '../lib/fallback';
import { readRemediationDocs } from '../lib/ssm-documents';
import { asList, controller, member, roleStatements, tempDir } from './helpers';

const docs = readRemediationDocs();

function inStack(id: string, docsDir?: string): { template: Template; fallback: RemediationFallback } {
  const stack = new Stack(new App(), 'S');
  const fallback = new RemediationFallback(stack, id, {
    automationRoleName: 'auto',
    actions: ['iam:GetRole', 'iam:TagRole'],
    guards: { 'iam:TagRole': ['dormant_tag_keys'] },
    ownRoleNames: ['auto'],
    remediationDocsDir: docsDir,
  });
  const runner = new iam.Role(stack, 'Runner', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  fallback.grantRun(runner);
  return { template: Template.fromStack(stack), fallback };
}

describe('RemediationFallback', () => {
  test('as FALLBACK_ID, its resources keep the logical ids they had as children of the stack', () => {
    // CDK's id: the path's alphanumerics, then md5 of the path; 'Default' is left out of both.
    const cdkId = (...p: string[]) =>
      p.filter((c) => c !== 'Resource').join('').replace(/[^A-Za-z0-9]/g, '') +
      createHash('md5').update(p.join('/')).digest('hex').slice(0, 8).toUpperCase();
    const expected = [cdkId('AutomationRole', 'Resource'), ...docs.map((d) => cdkId('RemediationDocuments', d.name))];
    expect(expected[0]).toBe('AutomationRoleC58D7324'); // the id deployed before the construct
    const ids = (t: Template) => Object.keys(t.toJSON().Resources as object);
    for (const t of [controller().template, member().template, inStack(FALLBACK_ID).template]) {
      expect(ids(t)).toEqual(expect.arrayContaining(expected));
    }
    expect(ids(inStack('Fallback').template)).not.toContain(expected[0]);
  });

  test('grantRun: start, poll, stop and PassRole to SSM, nothing else', () => {
    const { template, fallback } = inStack('Fallback');
    expect(fallback.documentNames).toEqual(docs.map((d) => d.name));
    const s = roleStatements(template, 'Runner');
    expect(s.map((x) => x.Sid)).toEqual(['StartRemediationDocuments', 'PollRemediationExecutions', 'PassAutomationRole']);
    expect(s.flatMap((x) => asList(x.Action)).sort()).toEqual([...FALLBACK_RUN_ACTIONS].sort());
    for (const x of s) expect(x.Effect).toBe('Allow');
  });

  test('without documents: disabled, and grantRun adds nothing', () => {
    const { template, fallback } = inStack('Fallback', tempDir({}));
    expect(fallback.enabled).toBe(false);
    expect(Object.keys(template.findResources('AWS::IAM::Policy')).filter((id) => id.startsWith('Runner'))).toEqual([]);
  });
});
