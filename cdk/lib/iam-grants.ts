/**
 * The IAM statements shared by every role that acts on identities: the controller's Lambda role,
 * the member-account role and the SSM automation roles.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { Guard, groupByResource, IAM_ACTION_RESOURCE, IamResourceKind, isMutating } from './permissions';

/** dormant's quarantine policy (src/domain/quarantine.rs): its path and name. */
export const QUARANTINE_POLICY_PATH = '/dormant/';
export const QUARANTINE_POLICY_NAME = 'DormantQuarantineDenyAll';

/** The ARN of dormant's quarantine policy in this stack's account. */
export function quarantinePolicyArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'iam',
    region: '',
    resource: 'policy',
    resourceName: `${QUARANTINE_POLICY_PATH.slice(1)}${QUARANTINE_POLICY_NAME}`,
  });
}

/**
 * dormant's quarantine policy, which the controller attaches to an identity it quarantines (and
 * may attach nothing else): a Deny of everything, created once per account by the stack that
 * holds the account's dormant role. dormant checks its default version before every attach.
 */
export function quarantinePolicy(scope: Construct): iam.ManagedPolicy {
  return new iam.ManagedPolicy(scope, 'QuarantinePolicy', {
    managedPolicyName: QUARANTINE_POLICY_NAME,
    path: QUARANTINE_POLICY_PATH,
    description: "dormant's quarantine: denies everything (attached by dormant only)",
    statements: [
      new iam.PolicyStatement({ sid: 'DormantQuarantine', effect: iam.Effect.DENY, actions: ['*'], resources: ['*'] }),
    ],
  });
}

/**
 * The tag keys dormant's roles may write and remove (src/domain/tag.rs TAG_KEY_PATTERNS): stage
 * tags, not the tags that grant something (`dormant:exempt*`, `dormant:restored-from`).
 */
export const TAG_KEY_PATTERNS = [
  'dormant:stage',
  'dormant:credentials',
  'dormant:key:*',
  'dormant:password:*',
  'dormant:next-step*',
  'Dormant:*',
  'DORMANT:*',
];

/** The condition of one guard (src/app/commands/permissions/policy.rs `guard_condition`). */
export function guardCondition(scope: Construct, guard: Guard): Record<string, Record<string, unknown>> {
  switch (guard) {
    case 'quarantine_policy':
      return { ArnEquals: { 'iam:PolicyARN': quarantinePolicyArn(scope) } };
    case 'marked':
      return { Null: { 'aws:ResourceTag/dormant:stage': 'false' } };
    case 'credentials_marked':
      return { Null: { 'aws:ResourceTag/dormant:credentials': 'false' } };
    case 'dormant_tag_keys':
      return { 'ForAllValues:StringLike': { 'aws:TagKeys': TAG_KEY_PATTERNS }, Null: { 'aws:TagKeys': 'false' } };
  }
}

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
 * Allow statements for `actions`, each on the resource type it requires in this stack's account;
 * an action with guards (permissions.json `guards`) only under each guard's condition, never
 * plainly; plus an explicit Deny of every mutating action on the protected roles (defence in
 * depth: the controller already refuses to touch them).
 */
export function identityStatements(
  scope: Construct,
  actions: readonly string[],
  ownRoleNames: readonly string[],
  guards: Readonly<Record<string, readonly Guard[]>>,
  /** Role actions granted by other statements of the same role, denied on the protected roles too. */
  alsoDenied: readonly string[] = [],
): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  const arnOf = (kind: IamResourceKind): string =>
    kind === 'account'
      ? '*'
      : kind === 'policy'
        ? quarantinePolicyArn(scope)
        : stack.formatArn({ service: 'iam', region: '', resource: kind, resourceName: '*' });
  const sids: Record<IamResourceKind, string> = {
    account: 'IamAccountLevelReads',
    role: 'IamRoles',
    user: 'IamUsers',
    'instance-profile': 'IamInstanceProfiles',
    group: 'IamGroups',
    policy: 'QuarantinePolicyRead',
  };
  const guardSids: Record<Guard, string> = {
    quarantine_policy: 'OnlyTheQuarantinePolicy',
    marked: 'OnlyMarkedIdentities',
    dormant_tag_keys: 'OnlyDormantTags',
    credentials_marked: 'OnlyUsersWithCredentialsOnTheLadder',
  };
  const statements: iam.PolicyStatement[] = [];
  for (const [kind, list] of groupByResource(actions)) {
    const plain = list.filter((a) => (guards[a] ?? []).length === 0);
    if (plain.length > 0) {
      statements.push(new iam.PolicyStatement({ sid: sids[kind], actions: plain, resources: [arnOf(kind)] }));
    }
    for (const guard of Object.keys(guardSids) as Guard[]) {
      const guarded = list.filter((a) => (guards[a] ?? []).includes(guard));
      if (guarded.length === 0) continue;
      statements.push(
        new iam.PolicyStatement({
          sid: `${sids[kind]}${guardSids[guard]}`,
          actions: guarded,
          resources: [arnOf(kind)],
          conditions: guardCondition(scope, guard),
        }),
      );
    }
  }
  const mutatingRoleActions = [...new Set([...actions.filter((a) => isMutating(a) && IAM_ACTION_RESOURCE[a] === 'role'), ...alsoDenied])].sort();
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
