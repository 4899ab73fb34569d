/**
 * The app's contents, shared by bin/dormant.ts and the tests: both stacks, their cdk-nag
 * acknowledgments, and cdk-nag's AwsSolutions pack as a validation plugin (synth fails on any
 * unacknowledged finding; acknowledgments are written into the template metadata).
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DormantConfigOverrides } from './config';
import { DormantStack, LambdaAsset } from './dormant-stack';
import { DormantMemberStack } from './member-stack';
import { acknowledgeNagFindings } from './nag';

export interface AppOptions {
  readonly memberAccounts?: string[];
  readonly organizationId?: string;
  readonly alarmTopicArn?: string;
  readonly controllerAccountId?: string;
  readonly config?: DormantConfigOverrides;
  /** Fan the scheduled sweep out through SQS (DormantStackProps.sweepFanOut). */
  readonly sweepFanOut?: boolean;
  /** @default resolveLambdaAsset() */
  readonly lambdaAsset?: LambdaAsset;
  /** Owners' answers: the answers function and its URL, and its role in member accounts. */
  readonly answers?: boolean;
}

export function buildApp(app: App, opts: AppOptions = {}): { controller: DormantStack; member: DormantMemberStack } {
  const controller = new DormantStack(app, 'DormantStack', {
    description: 'dormant: IAM remediation controller (table, Lambda, EventBridge rules, SSM documents, alarms)',
    memberAccounts: opts.memberAccounts,
    organizationId: opts.organizationId,
    alarmTopicArn: opts.alarmTopicArn,
    config: opts.config,
    sweepFanOut: opts.sweepFanOut,
    lambdaAsset: opts.lambdaAsset,
    answers: opts.answers,
  });
  const member = new DormantMemberStack(app, 'DormantMemberStack', {
    description: 'dormant: member-account role assumed by the controller, SSM automation role and documents',
    controllerAccountId: opts.controllerAccountId,
    answers: opts.answers,
  });
  acknowledgeNagFindings(controller);
  acknowledgeNagFindings(member);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { controller, member };
}
