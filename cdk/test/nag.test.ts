import { App, Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../lib/app';
import { PLACEHOLDER_ASSET } from '../lib/dormant-stack';
import { controller, member, tempDir } from './helpers';

const NOTIFY = {
  sesIdentity: 'example.com',
  emailFrom: 'dormant@example.com',
  slackWebhooksSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dormant/slack-AbCdEf',
};

const violations = (stack: Stack) =>
  new AwsSolutionsChecks().validateScope(stack).violations.map((v) => ({
    rule: v.ruleName,
    severity: v.severity,
    at: v.violatingResources.map((r) => r.constructPath),
  }));

/** Every acknowledgment recorded on the stack's constructs, as finding ids. */
function acknowledged(stack: Stack): string[] {
  const ids: string[] = [];
  for (const c of stack.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) {
        for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
          expect(reason.length).toBeGreaterThan(40); // a specific reason, not a placeholder
          ids.push(id.replace(/^annotation::/i, ''));
        }
      }
    }
  }
  return [...new Set(ids)].sort();
}

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['DormantStack', () => controller().stack],
    ['DormantStack, members pinned, organization set', () => controller({ memberAccounts: ['111122223333'], organizationId: 'o-abc123' }).stack],
    ['DormantStack without documents', () => controller({ remediationDocsDir: tempDir({}) }).stack],
    ['DormantStack with an alarm topic', () => controller({ alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:alerts' }).stack],
    [
      'DormantStack telling owners (SES, the feed topic, Slack webhooks from Secrets Manager)',
      () => controller({ notify: NOTIFY }).stack,
    ],
    [
      'DormantStack with sweep fan-out and Organizations discovery',
      () => controller({ sweepFanOut: true, config: { organization: { enabled: true } }, alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:alerts' }).stack,
    ],
    ['DormantStack with answers (function URL, signing key)', () => controller({ answers: { baseUrl: 'https://answers.example.com' } }).stack],
    [
      'DormantStack with answers, discovery and owner messages',
      () => controller({ answers: true, notify: NOTIFY, config: { organization: { enabled: true } } }).stack,
    ],
    ['DormantMemberStack', () => member().stack],
    ['DormantMemberStack with the answers role', () => member({ answers: true }).stack],
  ])('%s: no unacknowledged error or warning', (_name, make) => {
    expect(violations(make())).toEqual([]);
  });

  test.each([
    ['DormantStack', () => controller().stack, () => controller({}, false).stack],
    ['DormantMemberStack', () => member().stack, () => member({}, false).stack],
    ['DormantMemberStack with answers', () => member({ answers: true }).stack, () => member({ answers: true }, false).stack],
  ])('%s: every acknowledgment answers a finding that really fires', (_name, withAcks, withoutAcks) => {
    const fired = new Set(violations(withoutAcks()).map((v) => v.rule));
    const acks = acknowledged(withAcks());
    expect(acks.length).toBeGreaterThan(0);
    // The member-role AssumeRole wildcard is acknowledged even when members are pinned (then it
    // does not fire); everything else must fire without its acknowledgment.
    expect(acks.filter((id) => !fired.has(id))).toEqual([]);
    // Nothing but IAM5 (wildcard resources) is acknowledged.
    for (const id of acks) expect(id).toMatch(/^AwsSolutions-IAM5\[Resource::/);
  });
});

describe('the app as bin/dormant.ts builds it (cdk-nag as a validation plugin)', () => {
  test('synthesizes, with the acknowledgments in the template metadata', () => {
    const app = new App({ outdir: tempDir({}) });
    const { controller: c } = buildApp(app, { lambdaAsset: { path: PLACEHOLDER_ASSET, placeholder: true } });
    const assembly = app.synth(); // throws if cdk-nag reports an unacknowledged finding
    const template = assembly.getStackByName(c.stackName).template as { Resources: Record<string, { Metadata?: { cdk_nag?: unknown } }> };
    const withAcks = Object.entries(template.Resources).filter(([, r]) => r.Metadata?.cdk_nag !== undefined);
    // The two roles and their policies (the controller's overflows into a managed one), nothing else.
    expect(withAcks.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'AutomationRole',
      'AutomationRoleDefaultPolicy',
      'ControllerRole',
      'ControllerRoleDefaultPolicy',
      'ControllerRoleOverflowPolicy1',
    ]);
  });

  test('an unacknowledged finding stops the synth', () => {
    const app = new App({ outdir: tempDir({}) });
    const { controller: c } = buildApp(app, { lambdaAsset: { path: PLACEHOLDER_ASSET, placeholder: true } });
    new sqs.Queue(c, 'PlainQueue'); // no TLS policy, no DLQ: AwsSolutions-SQS3/SQS4
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });
});
