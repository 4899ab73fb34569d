/**
 * The SSM Automation fallback (docs/design.md, 'SSM Automation fallback'), one construct for both
 * stacks: the remediation documents, the role they run as, and the grant that lets the controller
 * (or member) role start them. DormantStack and DormantMemberStack each hold one, for their account.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { identityStatements } from './iam-grants';
import { Guard } from './permissions';
import { DEFAULT_DOCS_DIR, readRemediationDocs, RemediationDocuments } from './ssm-documents';

/** The actions `grantStop` allows: poll and stop an execution (an owner's Undo stops one). */
export const FALLBACK_STOP_ACTIONS = ['ssm:GetAutomationExecution', 'ssm:StopAutomationExecution'];

/** The actions `grantRun` allows (nonIdentityActions lists them for the tests). */
export const FALLBACK_RUN_ACTIONS = [
  'ssm:StartAutomationExecution',
  'ssm:GetAutomationExecution',
  'ssm:StopAutomationExecution',
  'iam:PassRole',
];

/**
 * The id to give the construct in a stack. CDK leaves 'Default' out of logical ids, so the
 * documents and the role keep the ids they had when the stacks built them directly: a new logical
 * id would make CloudFormation create the named role and documents anew, which fails on their names.
 */
export const FALLBACK_ID = 'Default';

export interface RemediationFallbackProps {
  /** The automation role's name (`dormant-automation` by default in the stacks). */
  readonly automationRoleName: string;
  /** The IAM actions the documents call: permissions.json `all`, as for the controller. */
  readonly actions: readonly string[];
  /** permissions.json `guards`: the conditions guarded actions are granted under. */
  readonly guards: Readonly<Record<string, readonly Guard[]>>;
  /** dormant's own role names, denied to every mutating role action (iam-grants.ts). */
  readonly ownRoleNames: readonly string[];
  /** @default ../remediation-docs */
  readonly remediationDocsDir?: string;
}

export class RemediationFallback extends Construct {
  public readonly documents: RemediationDocuments;
  /** The role SSM Automation runs the documents as, trusted by SSM in this account only. */
  public readonly automationRole: iam.Role;

  constructor(scope: Construct, id: string, props: RemediationFallbackProps) {
    super(scope, id);
    this.documents = new RemediationDocuments(this, 'RemediationDocuments', {
      docs: readRemediationDocs(props.remediationDocsDir ?? DEFAULT_DOCS_DIR),
    });
    this.automationRole = new iam.Role(this, 'AutomationRole', {
      roleName: props.automationRoleName,
      description: 'dormant: the role SSM Automation runs the remediation documents as',
      assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
      }),
    });
    for (const s of identityStatements(this, props.actions, props.ownRoleNames, props.guards)) {
      this.automationRole.addToPolicy(s);
    }
  }

  /** The document names (file names of remediation-docs/*.yaml); empty turns the fallback off. */
  public get documentNames(): string[] {
    return this.documents.names;
  }

  /** False when there is no document: no grant, and config `fallback.automation_role` stays empty. */
  public get enabled(): boolean {
    return this.documents.names.length > 0;
  }

  /**
   * Lets `grantee` poll and stop the documents' executions (and start none): `undo` stops a
   * running execution of the step it reverses. Adds nothing when there is no document.
   */
  public grantStop(grantee: iam.IGrantable): void {
    if (!this.enabled) return;
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PollRemediationExecutions',
        actions: [...FALLBACK_STOP_ACTIONS],
        resources: [this.documents.executionArn()],
      }),
    );
  }

  /**
   * Lets `grantee` start the documents, poll and stop their executions, and pass the automation
   * role to SSM. Adds nothing when there is no document.
   */
  public grantRun(grantee: iam.IGrantable): void {
    if (!this.enabled) return;
    const principal = grantee.grantPrincipal;
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartRemediationDocuments',
        actions: ['ssm:StartAutomationExecution'],
        resources: [...this.documents.startArns(), this.documents.executionArn()],
      }),
    );
    this.grantStop(grantee);
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PassAutomationRole',
        actions: ['iam:PassRole'],
        resources: [this.automationRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
      }),
    );
  }
}
