/**
 * A sample service control policy for the organization (docs/design.md, 'Deployment'): only security admins
 * and dormant's own roles may write `dormant:*` tags, and the inline policies of an identity that
 * dormant has quarantined cannot be changed by anyone else.
 *
 * dormant's quarantine is its managed policy `policy/dormant/DormantQuarantineDenyAll`: only the
 * privileged principals detach it (`iam:PolicyARN`) or change it (a new version could make it
 * grant something). Identities quarantined by earlier versions carry an inline deny, which IAM
 * cannot name in a condition: the SCP protects those through the identity's `dormant:stage` tag,
 * whose value starts with the stage (`quarantined next delete at 2026-12-20T04:00:00Z`): see
 * README "The sample SCP".
 */

import { DEFAULT_ROLE_NAMES } from './dormant-stack';

/** The names of dormant's roles, as the stacks were given them (`controllerRoleName`, ...). */
export type ScpRoleNames = typeof DEFAULT_ROLE_NAMES;

export interface ScpOptions {
  /** ARN patterns (ArnLike) of the security admins: allowed what the SCP denies to everyone else. */
  readonly adminPrincipalArns: string[];
  /** dormant's own roles, privileged too; renamed ones must be named here (`buildScp` adds them). */
  readonly roleNames: ScpRoleNames;
  /** Stages during which dormant's deny-all inline policy is in place (matched as a prefix of the tag's value). */
  readonly quarantinedStages: string[];
}

export const DEFAULT_SCP_OPTIONS: ScpOptions = {
  adminPrincipalArns: [
    // The security team's admin role (replace with your own). `arn:*:` matches every partition.
    'arn:*:iam::*:role/security-admin',
    // The same team through IAM Identity Center (permission set "SecurityAdmin").
    'arn:*:iam::*:role/aws-reserved/sso.amazonaws.com/*AWSReservedSSO_SecurityAdmin_*',
  ],
  // cdk/: DormantStack and DormantMemberStack; the answers role writes Keep's `dormant:exempt*`.
  roleNames: DEFAULT_ROLE_NAMES,
  quarantinedStages: ['quarantined', 'keys_deactivated', 'pending_delete'],
};

const roleArn = (name: string): string => `arn:*:iam::*:role/${name}`;

/** Everyone the SCP lets through: the admins, then dormant's roles. */
export function privilegedPrincipalArns(opts: ScpOptions = DEFAULT_SCP_OPTIONS): string[] {
  return [...opts.adminPrincipalArns, ...Object.values(opts.roleNames).map(roleArn)];
}

/** The roles whose names carry dormant's privileges: `dormant-*`, and any renamed one. */
function dormantRoleResources(opts: ScpOptions): string | string[] {
  const renamed = Object.values(opts.roleNames).filter((n) => !n.startsWith('dormant-'));
  return renamed.length === 0 ? roleArn('dormant-*') : [roleArn('dormant-*'), ...renamed.map(roleArn)];
}

/** dormant's quarantine policy in every account and partition. */
const QUARANTINE_POLICY_ARNS = 'arn:*:iam::*:policy/dormant/DormantQuarantineDenyAll';

/** Who may change the quarantine policy itself besides the admins: the deployment, not dormant. */
const POLICY_DEPLOYERS = ['arn:*:iam::*:role/cdk-*-cfn-exec-role-*'];

/** Who creates and changes dormant's roles besides the admins: its deployments (`cdk deploy`, a
 * service- or self-managed StackSet for the member stack). */
const ROLE_DEPLOYERS = [
  ...POLICY_DEPLOYERS,
  'arn:*:iam::*:role/stacksets-exec-*',
  'arn:*:iam::*:role/AWSCloudFormationStackSetExecutionRole',
];

/** What would let someone else hold, or widen, a role that bears one of dormant's names. */
const ROLE_CHANGES = [
  'iam:CreateRole',
  'iam:UpdateAssumeRolePolicy',
  'iam:PutRolePolicy',
  'iam:DeleteRolePolicy',
  'iam:AttachRolePolicy',
  'iam:DetachRolePolicy',
  'iam:PutRolePermissionsBoundary',
  'iam:DeleteRolePermissionsBoundary',
  'iam:DeleteRole',
];

export function buildScp(opts: ScpOptions = DEFAULT_SCP_OPTIONS): Record<string, unknown> {
  const unlessPrivileged = { ArnNotLike: { 'aws:PrincipalArn': privilegedPrincipalArns(opts) } };
  const admins = opts.adminPrincipalArns;
  const unlessAdminOrDeployer = { ArnNotLike: { 'aws:PrincipalArn': [...admins, ...POLICY_DEPLOYERS] } };
  return {
    Version: '2012-10-17',
    Statement: [
      {
        // The names above are privileged: in an account where one is not deployed (the optional
        // `dormant-answers`, say), anyone able to create it would hold those privileges.
        Sid: 'DenyDormantRoleChangesExceptDeployers',
        Effect: 'Deny',
        Action: ROLE_CHANGES,
        Resource: dormantRoleResources(opts),
        Condition: { ArnNotLike: { 'aws:PrincipalArn': [...admins, ...ROLE_DEPLOYERS] } },
      },
      {
        Sid: 'DenyDormantTagWritesExceptAdmins',
        Effect: 'Deny',
        Action: ['iam:TagRole', 'iam:UntagRole', 'iam:TagUser', 'iam:UntagUser', 'iam:CreateRole', 'iam:CreateUser'],
        Resource: '*',
        Condition: {
          'ForAnyValue:StringLike': { 'aws:TagKeys': ['dormant:*'] },
          ...unlessPrivileged,
        },
      },
      {
        // The automation role may write dormant's deny and tags: only dormant's roles pass it,
        // and only they and the admins change the documents it runs.
        Sid: 'DenyDormantAutomationUseExceptDormant',
        Effect: 'Deny',
        Action: [
          'iam:PassRole',
          'ssm:CreateDocument',
          'ssm:UpdateDocument',
          'ssm:UpdateDocumentDefaultVersion',
          'ssm:DeleteDocument',
          'ssm:ModifyDocumentPermission',
        ],
        Resource: [roleArn(opts.roleNames.automation), 'arn:*:ssm:*:*:document/Dormant-*'],
        Condition: { ...unlessPrivileged },
      },
      {
        // Attached by hand (by an incident responder, say), dormant would take it off on release.
        Sid: 'DenyQuarantinePolicyAttachDetachExceptDormant',
        Effect: 'Deny',
        Action: ['iam:AttachRolePolicy', 'iam:AttachUserPolicy', 'iam:DetachRolePolicy', 'iam:DetachUserPolicy'],
        Resource: '*',
        Condition: {
          ArnLike: { 'iam:PolicyARN': QUARANTINE_POLICY_ARNS },
          ...unlessPrivileged,
        },
      },
      {
        Sid: 'DenyQuarantinePolicyChangesExceptAdmins',
        Effect: 'Deny',
        Action: [
          'iam:CreatePolicyVersion',
          'iam:SetDefaultPolicyVersion',
          'iam:DeletePolicyVersion',
          'iam:DeletePolicy',
        ],
        Resource: QUARANTINE_POLICY_ARNS,
        Condition: { ...unlessAdminOrDeployer },
      },
      {
        Sid: 'DenyInlinePolicyChangesOnQuarantinedIdentities',
        Effect: 'Deny',
        Action: ['iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:PutUserPolicy', 'iam:DeleteUserPolicy'],
        Resource: '*',
        Condition: {
          StringLike: { 'aws:ResourceTag/dormant:stage': opts.quarantinedStages.map((stage) => `${stage}*`) },
          ...unlessPrivileged,
        },
      },
    ],
  };
}

/** AWS's limit on an SCP document, whitespace included. */
export const SCP_SIZE_LIMIT = 5120;

/** The SCP as committed in `cdk/scp/dormant-tags-scp.json` (2-space JSON, trailing newline). */
export function renderScp(opts: ScpOptions = DEFAULT_SCP_OPTIONS): string {
  return JSON.stringify(buildScp(opts), null, 2) + '\n';
}
