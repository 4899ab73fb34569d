/**
 * Owners' answers (docs/design.md, 'Answers'): the key the answer links are signed with (a
 * Secrets Manager secret read at cold start), the answers function (the same binary, told by
 * `DORMANT_FUNCTION=answers` to serve only its function URL) and the URL the links point to.
 * The URL has no IAM auth (owners click it from email or Slack): every request carries an
 * HMAC-signed, expiring, single-use token that the function checks before it acts. The function
 * is not the controller: an unauthenticated flood uses up only its own reserved concurrency, and
 * internet requests run under a role with only what the answer path calls (answerStatements).
 */
import { CfnOutput, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { identityStatements, quarantinePolicyArn } from './iam-grants';
import { PermissionsFile } from './permissions';

/** Which function the binary is (src/bin/lambda.rs): `answers` serves only function-URL requests. */
export const FUNCTION_ENV = 'DORMANT_FUNCTION';
/** The role the answers function assumes in member accounts instead of accounts[].role's. */
export const ANSWERS_ROLE_ENV = 'DORMANT_MEMBER_ROLE_NAME';
/** The answers role's name, in the controller account and (DormantMemberStack) in each member account. */
export const DEFAULT_ANSWERS_ROLE_NAME = 'dormant-answers';

/** The ladder steps whose IAM calls the answer path makes: the page's and Keep's look at the
 * identity (evaluate, Access Advisor, names by unique id) and the release that Keep (an exempt
 * identity is released at once) and Undo carry out. Approve only writes the record. */
export const ANSWER_STEPS = ['evaluate', 'access_advisor', 'resolve_id', 'release'];

/** The exemption tags Keep writes (src/domain/tag.rs), and nothing else of that kind. */
export const EXEMPT_TAG_KEYS = ['dormant:exempt', 'dormant:exempt-until', 'dormant:exempt-reason'];

/**
 * Release's actions the answers role never gets as the controller has them. The role serves the
 * internet, so it must not be able to put an identity under the `marked` guards itself: it
 * writes no stage or marker tag (a tag key in a condition is case-blind, so `Dormant:Stage`
 * would do too). Nor does it delete an inline policy (only an earlier version's inline deny is
 * one; on a marked role it could be a human's deny). Keys and the quarantine detach it gets
 * only under the stage tag's value (answerStatements). A release that needs more fails from the
 * page, is recorded, and the controller's next run finishes it (docs/design.md, 'Answers').
 */
export const NOT_FOR_ANSWERS = [
  'iam:TagRole',
  'iam:TagUser',
  'iam:DeleteRolePolicy',
  'iam:DeleteUserPolicy',
  'iam:DetachRolePolicy',
  'iam:DetachUserPolicy',
  'iam:UpdateAccessKey',
];

/** The IAM actions on identities the answer path calls (from permissions.json's steps). */
export function answerIdentityActions(permissions: PermissionsFile): string[] {
  const out = new Set<string>();
  for (const step of ANSWER_STEPS) {
    const kinds = permissions.steps[step];
    if (!kinds) throw new Error(`permissions.json has no step ${step}: regenerate it or update ANSWER_STEPS`);
    for (const list of Object.values(kinds)) for (const a of list) out.add(a);
  }
  return [...out].filter((a) => !NOT_FOR_ANSWERS.includes(a)).sort();
}

/**
 * The stages (src/domain/tag.rs `stage_tag`: the value starts with the stage) at which dormant's
 * quarantine is on a whole identity, and those at which a whole user's keys are off because
 * dormant turned them off. The answers role lifts the quarantine and turns keys back on only
 * where the stage tag says so: not on an identity a human quarantined, not a key an incident
 * responder turned off on a merely noticed or quarantined user, not through the credentials
 * marker (a credential's own ladder), which any user with an unused key carries from its notice.
 */
export const QUARANTINED_STAGES = ['quarantined*', 'keys_deactivated*', 'pending_delete*'];
export const KEYS_TURNED_OFF_STAGES = ['keys_deactivated*', 'pending_delete*'];

/**
 * The answers role's statements on identities in one account: answerIdentityActions under the
 * controller's guards, the protected roles denied, the release's detach and key statements
 * under the stage tag's value, plus Keep's exemption tags (the one thing an owner's answer
 * writes that the controller may not: the exact `dormant:exempt*` keys only).
 */
export function answerStatements(scope: Construct, permissions: PermissionsFile, ownRoleNames: readonly string[]): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  const arn = (kind: string) => stack.formatArn({ service: 'iam', region: '', resource: kind, resourceName: '*' });
  return [
    // The role actions granted below are denied on the protected roles with the rest.
    ...identityStatements(scope, answerIdentityActions(permissions), ownRoleNames, permissions.guards, ['iam:TagRole', 'iam:DetachRolePolicy']),
    new iam.PolicyStatement({
      sid: 'KeepWritesExemptionTags',
      // With `dormant:exempt` = true in the same request: writing "false" or only a date would
      // end someone's exemption.
      actions: ['iam:TagRole', 'iam:TagUser'],
      resources: [arn('role'), arn('user')],
      conditions: {
        'ForAllValues:StringLike': { 'aws:TagKeys': EXEMPT_TAG_KEYS },
        StringEquals: { 'aws:RequestTag/dormant:exempt': 'true' },
        Null: { 'aws:TagKeys': 'false', 'aws:RequestTag/dormant:exempt': 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'KeepRemovesMiscasedExemptionTags',
      // Another spelling of a key (`Dormant:Exempt`, which grants nothing) is removed before the
      // exact one is written; never the exact keys, which would end someone's exemption.
      actions: ['iam:UntagRole', 'iam:UntagUser'],
      resources: [arn('role'), arn('user')],
      conditions: {
        'ForAllValues:StringEqualsIgnoreCase': { 'aws:TagKeys': EXEMPT_TAG_KEYS },
        'ForAllValues:StringNotEquals': { 'aws:TagKeys': EXEMPT_TAG_KEYS },
        Null: { 'aws:TagKeys': 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'ReleaseTurnsOnKeysDormantTurnedOff',
      actions: ['iam:UpdateAccessKey'],
      resources: [arn('user')],
      conditions: { StringLike: { 'aws:ResourceTag/dormant:stage': KEYS_TURNED_OFF_STAGES } },
    }),
    new iam.PolicyStatement({
      sid: 'ReleaseLiftsDormantsQuarantine',
      actions: ['iam:DetachRolePolicy', 'iam:DetachUserPolicy'],
      resources: [arn('role'), arn('user')],
      conditions: {
        ArnEquals: { 'iam:PolicyARN': quarantinePolicyArn(scope) },
        StringLike: { 'aws:ResourceTag/dormant:stage': QUARANTINED_STAGES },
      },
    }),
  ];
}

/** What reading the key needs: the secret, through SSM's /aws/reference/secretsmanager/ path. */
export const ANSWER_ACTIONS = ['secretsmanager:GetSecretValue', 'ssm:GetParameter'];

export interface AnswersProps {
  /** Where links point when they are minted (a custom domain in front of the function URL, or the
   * function URL itself once known: it is an output of this stack). @default not set */
  readonly baseUrl?: string;
  /** The answers function's own reserved concurrency: what a flood of requests can take. @default 2 */
  readonly reservedConcurrency?: number;
  /** @default 'dormant-answers' (DormantMemberStack's `answersRoleName` must match) */
  readonly roleName?: string;
  /** @default 'dormant-answers' */
  readonly functionName?: string;
}

/** The signing key: 64 random letters and digits, generated by Secrets Manager. */
export function answerKey(stack: Stack): secretsmanager.Secret {
  const secret = new secretsmanager.Secret(stack, 'AnswerSigningKey', {
    description: "dormant: the HMAC-SHA-256 key owners' answer links are signed with",
    generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
  });
  Validations.of(secret).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason:
      'Rotated by hand (docs/design.md, Answers): a new key is put in place while the old one is kept as answers.previous_key_source until the links it signed have expired; an automatic rotation would void every link in flight.',
  });
  return secret;
}

/** Lets `role` read the key, by name through SSM as the Lambda does. */
export function grantAnswerKey(stack: Stack, role: iam.Role, secret: secretsmanager.Secret): void {
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ReadAnswerKey',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [secret.secretArn],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ReadAnswerKeyThroughSsm',
      actions: ['ssm:GetParameter'],
      resources: [
        stack.formatArn({
          service: 'ssm',
          resource: 'parameter',
          resourceName: `aws/reference/secretsmanager/${secret.secretName}`,
        }),
      ],
    }),
  );
}

/** The function URL: no IAM auth, every action token-checked by the Lambda. */
export function answerUrl(stack: Stack, fn: lambda.Function): lambda.FunctionUrl {
  const url = fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
  new CfnOutput(stack, 'AnswerUrl', {
    value: url.url,
    description: 'Set [answers] base_url (config.answers.base_url) to this for the links messages carry',
  });
  return url;
}
