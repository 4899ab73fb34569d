/**
 * DormantMemberStack: deployed in every member account (e.g. as a service-managed StackSet).
 *
 * - `dormant-member`: the role the controller assumes (docs/design.md, 'Multi-account and scale'), trusted only by the
 *   controller account's `dormant-controller` role, with the same IAM actions as the controller,
 *   and (unless `securityHub: false`) Security Hub's import and workflow update in this account.
 * - `dormant-automation`: the role the SSM Automation documents run as in this account.
 * - with `answers`: `dormant-answers`, the role the controller account's answers function assumes
 *   to act on an owner's answer here, with only what that path calls (answers.ts answerStatements).
 * - The SSM documents themselves, so the AccessDenied fallback can run in the member account.
 *
 * The controller account id is a CloudFormation parameter, so one template serves every account.
 */
import { CfnOutput, CfnParameter, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { answerStatements } from './answers';
import { DEFAULT_ROLE_NAMES } from './dormant-stack';
import { FALLBACK_ID, RemediationFallback } from './fallback';
import { identityStatements, quarantinePolicy } from './iam-grants';
import { loadPermissions, PERMISSIONS_FILE } from './permissions';
import { securityHubStatements } from './security-hub';

export interface DormantMemberStackProps extends StackProps {
  /** Default for the ControllerAccountId parameter. */
  readonly controllerAccountId?: string;
  readonly controllerRoleName?: string;
  readonly memberRoleName?: string;
  readonly automationRoleName?: string;
  readonly remediationDocsDir?: string;
  readonly permissionsFile?: string;
  /** Let the member role report this account's findings to Security Hub (the controller's
   * `security_hub.enabled`). @default true */
  readonly securityHub?: boolean;
  /** The region findings are imported in (`security_hub.region`). @default the stack's */
  readonly securityHubRegion?: string;
  /** The role the controller account's answers function assumes here (DormantStack `answers`).
   * @default no answers role: owners' answers about this account's identities fail */
  readonly answers?: boolean;
  /** @default 'dormant-answers' (DormantStack `answers.roleName`) */
  readonly answersRoleName?: string;
}

export class DormantMemberStack extends Stack {
  public readonly memberRole: iam.Role;
  /** With `answers`: the answers function's role in this account. */
  public readonly answersRole?: iam.Role;
  /** The SSM documents, the automation role and the member role's right to run them. */
  public readonly fallback: RemediationFallback;
  public readonly controllerAccountId: CfnParameter;

  constructor(scope: Construct, id: string, props: DormantMemberStackProps = {}) {
    super(scope, id, props);
    const names = {
      controller: props.controllerRoleName ?? DEFAULT_ROLE_NAMES.controller,
      member: props.memberRoleName ?? DEFAULT_ROLE_NAMES.member,
      automation: props.automationRoleName ?? DEFAULT_ROLE_NAMES.automation,
      answers: props.answersRoleName ?? DEFAULT_ROLE_NAMES.answers,
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

    // 'Default' keeps the logical ids the stack gave these resources before (fallback.ts).
    this.fallback = new RemediationFallback(this, FALLBACK_ID, {
      automationRoleName: names.automation,
      actions: permissions.all,
      guards: permissions.guards,
      ownRoleNames: Object.values(names),
      remediationDocsDir: props.remediationDocsDir,
    });

    // Trust the account, narrowed to the one role by aws:PrincipalArn: unlike a role-ARN principal
    // this survives the controller role being recreated and can be deployed before it exists.
    this.memberRole = new iam.Role(this, 'MemberRole', {
      roleName: names.member,
      description: 'dormant: assumed by the controller in the security account',
      assumedBy: new iam.AccountPrincipal(this.controllerAccountId.valueAsString).withConditions({
        ArnEquals: { 'aws:PrincipalArn': controllerRoleArn },
      }),
    });
    quarantinePolicy(this);
    for (const s of identityStatements(this, permissions.all, Object.values(names), permissions.guards)) {
      this.memberRole.addToPolicy(s);
    }
    this.fallback.grantRun(this.memberRole);
    // A member account's findings are imported with its own credentials (the default product
    // takes a finding only from the account it is about).
    if (props.securityHub ?? true) {
      for (const st of securityHubStatements(this, props.securityHubRegion ?? '')) this.memberRole.addToPolicy(st);
    }

    if (props.answers) {
      const answersRoleArn = `arn:${this.partition}:iam::${this.controllerAccountId.valueAsString}:role/${names.answers}`;
      this.answersRole = new iam.Role(this, 'AnswersRole', {
        roleName: names.answers,
        description: "dormant: assumed by the answers function in the security account (owners' answers)",
        assumedBy: new iam.AccountPrincipal(this.controllerAccountId.valueAsString).withConditions({
          ArnEquals: { 'aws:PrincipalArn': answersRoleArn },
        }),
      });
      for (const s of answerStatements(this, permissions, Object.values(names))) this.answersRole.addToPolicy(s);
      this.fallback.grantStop(this.answersRole);
      if (props.securityHub ?? true) {
        for (const st of securityHubStatements(this, props.securityHubRegion ?? '')) this.answersRole.addToPolicy(st);
      }
      new CfnOutput(this, 'AnswersRoleArn', { value: this.answersRole.roleArn });
    }

    new CfnOutput(this, 'MemberRoleArn', { value: this.memberRole.roleArn });
    new CfnOutput(this, 'AutomationRoleArn', { value: this.fallback.automationRole.roleArn });
  }
}
