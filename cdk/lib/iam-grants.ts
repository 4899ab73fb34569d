/**
 * The IAM statements shared by every role that acts on identities: the controller's Lambda role,
 * the member-account role and the SSM automation roles.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { groupByResource, IAM_ACTION_RESOURCE, IamResourceKind, isMutating } from './permissions';

/** Identities dormant never changes (docs/design.md, 'Decisions and guards', the protected list), as IAM role resources. */
export function protectedRoleResources(scope: Construct, ownRoleNames: readonly string[]): string[] {
  const stack = Stack.of(scope);
  const role = (name: string) => stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: name });
  return [
    // The controller's fixed protected list (src/domain/exemption.rs ALWAYS_PROTECTED).
    role('aws-service-role/*'),
    role('aws-reserved/*'),
    role('OrganizationAccountAccessRole'),
    role('AWSControlTower*'),
    role('aws-controltower-*'),
    role('stacksets-exec-*'),
    role('AWSCloudFormationStackSetExecutionRole'),
    role('AWSCloudFormationStackSetAdministrationRole'),
    role('cdk-*-role-*'),
    ...ownRoleNames.map(role),
  ];
}

/**
 * Allow statements for `actions`, each on the resource type it requires in this stack's account,
 * plus an explicit Deny of every mutating action on the protected roles (defence in depth: the
 * controller already refuses to touch them).
 */
export function identityStatements(
  scope: Construct,
  actions: readonly string[],
  ownRoleNames: readonly string[],
): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  const arnOf = (kind: IamResourceKind): string =>
    kind === 'account' ? '*' : stack.formatArn({ service: 'iam', region: '', resource: kind, resourceName: '*' });
  const sids: Record<IamResourceKind, string> = {
    account: 'IamAccountLevelReads',
    role: 'IamRoles',
    user: 'IamUsers',
    'instance-profile': 'IamInstanceProfiles',
    group: 'IamGroups',
  };
  const statements: iam.PolicyStatement[] = [];
  for (const [kind, list] of groupByResource(actions)) {
    statements.push(new iam.PolicyStatement({ sid: sids[kind], actions: list, resources: [arnOf(kind)] }));
  }
  const mutatingRoleActions = actions.filter((a) => isMutating(a) && IAM_ACTION_RESOURCE[a] === 'role').sort();
  if (mutatingRoleActions.length > 0) {
    statements.push(
      new iam.PolicyStatement({
        sid: 'NeverTouchProtectedRoles',
        effect: iam.Effect.DENY,
        actions: mutatingRoleActions,
        resources: protectedRoleResources(scope, ownRoleNames),
      }),
    );
  }
  return statements;
}
