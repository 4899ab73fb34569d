#!/usr/bin/env node
/**
 * The CDK app: DormantStack (controller account) and DormantMemberStack (member accounts), checked
 * by cdk-nag's AwsSolutions pack (synth fails on any unacknowledged finding). See lib/app.ts.
 *
 * Context (all optional; `-c key=value`):
 *   memberAccounts      comma-separated member account ids (config `accounts`)
 *   controllerAccountId default of DormantMemberStack's ControllerAccountId parameter
 *   organizationId      restrict sts:AssumeRole to roles in this organization
 *   alarmTopicArn       SNS topic for the alarms
 *   dormantConfig       JSON of configuration overrides, e.g. '{"dry_run":true}' or
 *                       '{"organization":{"enabled":true}}' (accounts from AWS Organizations)
 *   sweepFanOut         true: the daily sweep queues one SQS message per account (docs/design.md, 'Multi-account and scale')
 *   answers             true: owners' answers, a function of their own behind a function URL, and
 *                       its role in member accounts (docs/design.md, 'Answers')
 * Environment: DORMANT_LAMBDA_ZIP, the Lambda asset (default: scripts/package's arm64 zip, else a
 * placeholder that fails every invocation; `cdk synth --strict` refuses the placeholder).
 */
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';

const app = new App();
const ctx = (key: string): string | undefined => {
  const v: unknown = app.node.tryGetContext(key);
  return v === undefined || v === null || v === '' ? undefined : String(v);
};
const dormantConfig: unknown = app.node.tryGetContext('dormantConfig');

const { controller } = buildApp(app, {
  memberAccounts: ctx('memberAccounts')?.split(',').map((s) => s.trim()).filter(Boolean),
  organizationId: ctx('organizationId'),
  alarmTopicArn: ctx('alarmTopicArn'),
  controllerAccountId: ctx('controllerAccountId'),
  sweepFanOut: ctx('sweepFanOut') === 'true',
  answers: ctx('answers') === 'true',
  config: typeof dormantConfig === 'string' ? JSON.parse(dormantConfig) : (dormantConfig as object | undefined),
});
if (controller.lambdaAsset.placeholder) {
  console.warn(
    'WARNING: no Lambda asset built; synthesizing with cdk/placeholder-asset, which fails every invocation. ' +
      'Run `scripts/package` (the arm64 zip lands in target/lambda/arm64/) or set DORMANT_LAMBDA_ZIP.',
  );
}
