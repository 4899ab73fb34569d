/**
 * Organization-wide sweeps: Organizations discovery (config `[organization]`) and the sweep fanned
 * out through SQS (docs/design.md, 'Multi-account and scale').
 */
import { Match } from 'aws-cdk-lib/assertions';
import * as fs from 'fs';
import * as path from 'path';
import { nonIdentityActions, REJECTED_SWEEP_FILTER_PATTERN, SWEEP_QUEUE_ENV } from '../lib/dormant-stack';
import { loadPermissions } from '../lib/permissions';
import { readRemediationDocs } from '../lib/ssm-documents';
import { asList, controller, roleStatements } from './helpers';

const permissions = loadPermissions();
const hasDocuments = readRemediationDocs().length > 0;
type Statement = ReturnType<typeof roleStatements>[number];
const allowed = (statements: Statement[]) =>
  [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)))].sort();
const logicalId = (template: ReturnType<typeof controller>['template'], type: string, prefix: string): string => {
  const id = Object.keys(template.findResources(type)).find((k) => k.startsWith(prefix));
  if (!id) throw new Error(`no ${type} ${prefix}`);
  return id;
};

describe('off by default', () => {
  const { stack, template } = controller();

  test('no sweep queue, no event source mapping, no queue URL, no ListAccounts', () => {
    expect(stack.sweepQueue).toBeUndefined();
    template.resourceCountIs('AWS::SQS::Queue', 1);
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
    expect(Object.keys(fn.Properties.Environment.Variables)).toEqual(['DORMANT_CONFIG']);
    expect(allowed(roleStatements(template, 'ControllerRole'))).not.toContain('organizations:ListAccounts');
    expect(stack.config.organization).toEqual({ enabled: false, role_name: 'dormant-member', exclude: [], include_own_account: false });
    expect(stack.alarms.rejectedSweepRequests).toBeUndefined();
  });
});

describe('Organizations discovery and sweep fan-out on', () => {
  const { stack, template } = controller({
    sweepFanOut: true,
    memberAccounts: ['111122223333'],
    config: { organization: { enabled: true, exclude: ['444455556666'] } },
  });
  const statements = roleStatements(template, 'ControllerRole');
  const sweepQueue = logicalId(template, 'AWS::SQS::Queue', 'SweepQueue');
  const sweepDlq = logicalId(template, 'AWS::SQS::Queue', 'SweepDeadLetterQueue');

  test('the controller role allows exactly the base set + ListAccounts + consuming the sweep queue', () => {
    expect(allowed(statements)).toEqual(
      [...permissions.all, ...nonIdentityActions({ hasDocuments, organization: true, sweepFanOut: true })].sort(),
    );
    const list = statements.filter((s) => asList(s.Action).includes('organizations:ListAccounts'));
    expect(list).toHaveLength(1);
    expect(list[0].Resource).toBe('*');
  });

  test('messages the consumer drops are counted and alarmed on, matching the lines it logs', () => {
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: REJECTED_SWEEP_FILTER_PATTERN,
      MetricTransformations: [{ MetricNamespace: 'Dormant', MetricName: 'RejectedSweepRequests', MetricValue: '1' }],
    });
    expect(stack.alarms.rejectedSweepRequests).toBeDefined();
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RejectedSweepRequests',
      Namespace: 'Dormant',
      Threshold: 1,
    });
    // Every error line of the consumer that drops a message carries the phrase.
    const phrase = JSON.parse(REJECTED_SWEEP_FILTER_PATTERN) as string;
    const consumer = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'app', 'sweep_queue.rs'), 'utf8');
    const dropped = [...consumer.matchAll(/error!\([^;]*?"([^"]+)",?\s*\);/gs)].map((m) => m[1]);
    expect(dropped.length).toBe(3);
    for (const line of dropped) expect(line).toContain(phrase);
  });

  test('SendMessage only on the sweep queue (besides the dead-letter queue); the consumer actions only on it too', () => {
    const send = statements.find((s) => s.Sid === 'QueueSweepRequests');
    expect(send?.Action).toBe('sqs:SendMessage');
    expect(send?.Resource).toEqual({ 'Fn::GetAtt': [sweepQueue, 'Arn'] });
    for (const s of statements.filter((x) => asList(x.Action).some((a) => a.startsWith('sqs:Receive')))) {
      expect(s.Resource).toEqual({ 'Fn::GetAtt': [sweepQueue, 'Arn'] });
    }
  });

  test('discovered accounts are assumed into by role name in any account', () => {
    const assume = statements.find((s) => asList(s.Action).includes('sts:AssumeRole'));
    expect(JSON.stringify(assume?.Resource)).toContain(':iam::*:role/dormant-member');
    expect(stack.config.organization).toEqual({
      enabled: true,
      role_name: 'dormant-member',
      exclude: ['444455556666'],
      include_own_account: false,
    });
    expect(stack.config.accounts.map((a) => a.id)).toEqual(['111122223333']);
  });

  test('the sweep queue: encrypted, TLS only, its own DLQ, visibility timeout well past the Lambda timeout', () => {
    template.resourceCountIs('AWS::SQS::Queue', 3);
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 5400,
      MessageRetentionPeriod: 86400,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [sweepDlq, 'Arn'] }, maxReceiveCount: 3 },
    });
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
    expect(fn.Properties.Timeout).toBeLessThan(5400);
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy'));
    for (const q of [sweepQueue, sweepDlq]) {
      const policy = policies.find((p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: q }]));
      expect(JSON.stringify(policy?.Properties.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
    }
  });

  test('an event source mapping with ReportBatchItemFailures and bounded concurrency feeds the same function', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [sweepQueue, 'Arn'] },
      FunctionName: { Ref: logicalId(template, 'AWS::Lambda::Function', 'Controller') },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
      BatchSize: 1,
    });
  });

  test(`${SWEEP_QUEUE_ENV} tells the Lambda to fan the sweep out`, () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [SWEEP_QUEUE_ENV]: { Ref: sweepQueue } }) },
    });
  });

  test('an alarm fires when a sweep request lands in the sweep dead-letter queue', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [sweepDlq, 'QueueName'] } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(stack.alarms.sweepDlq).toBeDefined();
  });
});

describe('bad settings stop the synth', () => {
  test('maxConcurrency must leave the findings a slot of the reserved concurrency', () => {
    expect(() => controller({ sweepFanOut: { maxConcurrency: 3 } })).toThrow(/maxConcurrency/);
    expect(() => controller({ sweepFanOut: { maxConcurrency: 1 } })).toThrow(/maxConcurrency/);
    expect(() => controller({ sweepFanOut: { maxConcurrency: 4 }, reservedConcurrency: 6 })).not.toThrow();
  });

  test('organization.role_name comes from the stack, not from the overrides', () => {
    expect(() => controller({ config: { organization: { role_name: 'x' } as never } })).toThrow(/organization.role_name/);
    expect(() => controller({ config: { organization: { nonsense: 1 } as never } })).toThrow(/organization.nonsense/);
  });
});
