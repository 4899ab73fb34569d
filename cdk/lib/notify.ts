/**
 * Owner messages (docs/design.md, 'Owners and messages'): what the controller may do to tell
 * owners. Sent from the controller's account only: SES from one verified identity, SNS to the
 * feed topic this stack creates and the topics the configuration names, and the Slack webhook
 * URLs read from one Secrets Manager secret. Each grant names its resource; none is "*".
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** How owner messages are delivered; the stack turns `notify.enabled` on when given. */
export interface NotifyProps {
  /**
   * The verified SES identity messages are sent from: an address (`dormant@example.com`) or a
   * domain (`example.com`). Verify it in SES (and leave the sandbox) before deploying.
   */
  readonly sesIdentity: string;
  /** The sender address (`notify.email_from`). @default sesIdentity when it is an address */
  readonly emailFrom?: string;
  /** ARN of a secret whose string is JSON `{"#channel": "https://hooks.slack.com/…"}`. */
  readonly slackWebhooksSecretArn?: string;
}

/** The recipients the configuration names that are SNS topics (`sns:ARN`). */
export function topicsIn(values: string[]): string[] {
  return [...new Set(values.filter((v) => v.startsWith('sns:')).map((v) => v.slice(4)))].sort();
}

/** The security team's feed: every message dormant sends, encrypted with a key of its own. */
export function feedTopic(scope: Construct): { topic: sns.Topic; key: kms.Key } {
  const key = new kms.Key(scope, 'FeedKey', {
    enableKeyRotation: true,
    description: 'dormant: the owner-message feed topic',
  });
  const topic = new sns.Topic(scope, 'FeedTopic', {
    displayName: 'dormant: identities told to their owners',
    masterKey: key,
    enforceSSL: true,
  });
  return { topic, key };
}

/** Publishing to the encrypted feed: SNS asks KMS for a data key on the publisher's behalf. */
export function feedKeyStatement(key: kms.IKey): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'EncryptFeedMessages',
    actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
    resources: [key.keyArn],
  });
}

/** What the controller role needs for `notify`: SendEmail from the identity, Publish to the
 * topics, GetSecretValue of the webhook secret. */
export function notifyStatements(stack: Stack, props: NotifyProps, topicArns: string[]): iam.PolicyStatement[] {
  const statements = [
    new iam.PolicyStatement({
      sid: 'SendOwnerEmail',
      actions: ['ses:SendEmail'],
      resources: [stack.formatArn({ service: 'ses', resource: 'identity', resourceName: props.sesIdentity })],
      // Only from the configured sender, whichever identity authorizes it.
      conditions: { StringEquals: { 'ses:FromAddress': senderOf(props) } },
    }),
    new iam.PolicyStatement({ sid: 'PublishOwnerMessages', actions: ['sns:Publish'], resources: topicArns }),
  ];
  if (props.slackWebhooksSecretArn) {
    statements.push(
      new iam.PolicyStatement({
        sid: 'ReadSlackWebhooks',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.slackWebhooksSecretArn],
      }),
    );
  }
  return statements;
}

/** The sender address: `emailFrom`, or the identity when it is an address. */
export function senderOf(props: NotifyProps): string {
  const from = props.emailFrom ?? (props.sesIdentity.includes('@') ? props.sesIdentity : undefined);
  if (!from) {
    throw new Error(`notify.emailFrom is needed when sesIdentity (${props.sesIdentity}) is a domain`);
  }
  if (!props.sesIdentity.includes('@') && !from.endsWith(`@${props.sesIdentity}`)) {
    throw new Error(`notify.emailFrom ${from} is not an address of the SES identity ${props.sesIdentity}`);
  }
  return from;
}
