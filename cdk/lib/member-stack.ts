/**
 * DormantMemberStack: deployed in every member account (e.g. as a service-managed StackSet).
 *
 * - `dormant-member`: the role the controller assumes (docs/design.md, 'Multi-account and scale'), trusted only by the
 *   controller account's `dormant-controller` role, with the same IAM actions as the controller.
 * - `dormant-automation`: the role the SSM Automation documents run as in this account.
 * - The SSM documents themselves, so the AccessDenied fallback can run in the member account.
 *
 * The controller account id is a CloudFormation parameter, so one template serves every account.
 */
import { CfnOutput, CfnParameter, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { DEFAULT_ROLE_NAMES } from './dormant-stack';
import { identityStatements } from './iam-grants';
import { loadPermissions, PERMISSIONS_FILE } from './permissions';
import { DEFAULT_DOCS_DIR, readRemediationDocs, RemediationDocuments } from './ssm-documents';

export interface DormantMemberStackProps extends StackProps {
  /** Default for the ControllerAccountId parameter. */
  readonly controllerAccountId?: string;
  readonly controllerRoleName?: string;
  readonly memberRoleName?: string;
  readonly automationRoleName?: string;
  readonly remediationDocsDir?: string;
  readonly permissionsFile?: string;
}

export class DormantMemberStack extends Stack {
  public readonly memberRole: iam.Role;
  public readonly automationRole: iam.Role;
  public readonly documents: RemediationDocuments;
  public readonly controllerAccountId: CfnParameter;

  constructor(scope: Construct, id: string, props: DormantMemberStackProps = {}) {
    super(scope, id, props);
    const names = {
      controller: props.controllerRoleName ?? DEFAULT_ROLE_NAMES.controller,
      member: props.memberRoleName ?? DEFAULT_ROLE_NAMES.member,
      automation: props.automationRoleName ?? DEFAULT_ROLE_NAMES.automation,
    };
    const permissions = loadPermissions(props.permissionsFile ?? PERMISSIONS_FILE);

    this.controllerAccountId = new CfnParameter(this, 'ControllerAccountId', {
      type: 'String',
      description: 'The account that runs DormantStack (its dormant-controller role is trusted)',
      allowedPattern: '^\\d{12}$',
      constraintDescription: 'a 12-digit AWS account id',
      ...(props.controllerAccountId ? { default: props.controllerAccountId } : {}),
    });
    const controllerRoleArn = `arn:${this.partition}:iam::${this.controllerAccountId.valueAsString}:role/${names.controller}`;

    this.documents = new RemediationDocuments(this, 'RemediationDocuments', {
      docs: readRemediationDocs(props.remediationDocsDir ?? DEFAULT_DOCS_DIR),
    });

    this.automationRole = new iam.Role(this, 'AutomationRole', {
      roleName: names.automation,
      description: 'dormant: the role SSM Automation runs the remediation documents as',
      assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': this.account },
      }),
    });
    for (const s of identityStatements(this, permissions.all, Object.values(names))) {
      this.automationRole.addToPolicy(s);
    }

    // Trust the account, narrowed to the one role by aws:PrincipalArn: unlike a role-ARN principal
    // this survives the controller role being recreated and can be deployed before it exists.
    this.memberRole = new iam.Role(this, 'MemberRole', {
      roleName: names.member,
      description: 'dormant: assumed by the controller in the security account',
      assumedBy: new iam.AccountPrincipal(this.controllerAccountId.valueAsString).withConditions({
        ArnEquals: { 'aws:PrincipalArn': controllerRoleArn },
      }),
    });
    for (const s of identityStatements(this, permissions.all, Object.values(names))) {
      this.memberRole.addToPolicy(s);
    }
    if (this.documents.names.length > 0) {
      this.memberRole.addToPolicy(
        new iam.PolicyStatement({
          sid: 'StartRemediationDocuments',
          actions: ['ssm:StartAutomationExecution'],
          resources: [...this.documents.startArns(), this.documents.executionArn()],
        }),
      );
      this.memberRole.addToPolicy(
        new iam.PolicyStatement({
          sid: 'PollRemediationExecutions',
          // Stop: `undo` stops a running execution of the step it reverses.
          actions: ['ssm:GetAutomationExecution', 'ssm:StopAutomationExecution'],
          resources: [this.documents.executionArn()],
        }),
      );
      this.memberRole.addToPolicy(
        new iam.PolicyStatement({
          sid: 'PassAutomationRole',
          actions: ['iam:PassRole'],
          resources: [this.automationRole.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
        }),
      );
    }

    new CfnOutput(this, 'MemberRoleArn', { value: this.memberRole.roleArn });
    new CfnOutput(this, 'AutomationRoleArn', { value: this.automationRole.roleArn });
  }
}
