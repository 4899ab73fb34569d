/**
 * Security Hub as the dashboard (docs/design.md, 'Security Hub'): what a role that reports to
 * Security Hub may do there. With the `default` product, BatchImportFindings accepts a finding
 * only from the account it is about, so the controller imports its own account's findings and
 * each member role its account's; both update the workflow of findings in their own account.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/** The workflow statuses dormant sets (BatchUpdateFindings): never NEW or SUPPRESSED. */
export const WORKFLOW_STATUSES = ['NOTIFIED', 'RESOLVED'];

/**
 * BatchImportFindings as this account's `default` product in `region` (the stack's when empty),
 * and BatchUpdateFindings of this account's findings in any region (a nominating finding lives
 * in its own region), only to set NOTIFIED or RESOLVED.
 */
export function securityHubStatements(stack: Stack, region: string): iam.PolicyStatement[] {
  const account = stack.account;
  return [
    new iam.PolicyStatement({
      sid: 'ImportOwnFindings',
      actions: ['securityhub:BatchImportFindings'],
      resources: [
        stack.formatArn({
          service: 'securityhub',
          region: region || stack.region,
          resource: 'product',
          resourceName: `${account}/default`,
        }),
      ],
    }),
    new iam.PolicyStatement({
      sid: 'UpdateFindingWorkflow',
      actions: ['securityhub:BatchUpdateFindings'],
      resources: [stack.formatArn({ service: 'securityhub', region: '*', resource: 'hub', resourceName: 'default' })],
      conditions: { StringEquals: { 'securityhub:ASFFSyntaxPath/Workflow.Status': WORKFLOW_STATUSES } },
    }),
  ];
}
