import { nonIdentityActions } from '../lib/dormant-stack';
import { loadPermissions } from '../lib/permissions';
import { controller, roleStatements } from './helpers';

const SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dormant/slack-AbCdEf';
const TEAM_TOPIC = 'arn:aws:sns:us-east-1:123456789012:team-a';

const { stack, template } = controller({
  notify: { sesIdentity: 'example.com', emailFrom: 'dormant@example.com', slackWebhooksSecretArn: SECRET },
  config: { notify: { routes: { 'team-a': `sns:${TEAM_TOPIC}` }, fallback: 'secops@example.com' } },
});
const statements = roleStatements(template, 'ControllerRole');
const bySid = (sid: string) => statements.find((s) => s.Sid === sid);
const actions = (s: { Action: string | string[] }) => [s.Action].flat().sort();

describe('owner messages (notify)', () => {
  test('the config turns notify on, with the feed topic, the sender and the secret filled in', () => {
    const n = stack.config.notify;
    expect(n.enabled).toBe(true);
    expect(n.email_from).toBe('dormant@example.com');
    expect(n.slack_webhooks_secret).toBe(SECRET);
    expect(stack.resolve(n.feed)).toEqual({ 'Fn::Join': ['', ['sns:', { Ref: expect.stringMatching(/^FeedTopic/) }]] });
    expect(n.owner_tags).toEqual(['dormant:owner', 'owner', 'Owner', 'team', 'contact']);
  });

  test('SendEmail only from the configured sender of the SES identity', () => {
    const s = bySid('SendOwnerEmail')!;
    expect(actions(s)).toEqual(['ses:SendEmail']);
    expect(JSON.stringify(s.Resource)).toContain(':identity/example.com');
    expect(s.Condition).toEqual({ StringEquals: { 'ses:FromAddress': 'dormant@example.com' } });
  });

  test('Publish only to the feed and the topics the routes name; the secret only', () => {
    const publish = bySid('PublishOwnerMessages')!;
    expect(actions(publish)).toEqual(['sns:Publish']);
    const resources = [publish.Resource].flat();
    expect(resources).toHaveLength(2);
    expect(resources).toContainEqual({ Ref: expect.stringMatching(/^FeedTopic/) });
    expect(resources).toContain(TEAM_TOPIC);
    const secret = bySid('ReadSlackWebhooks')!;
    expect([actions(secret), secret.Resource]).toEqual([['secretsmanager:GetSecretValue'], SECRET]);
    const key = bySid('EncryptFeedMessages')!;
    expect(actions(key)).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
  });

  test('the role allows exactly permissions.json ∪ the notify actions, none on "*"', () => {
    const allowed = [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap(actions))].sort();
    expect(allowed).toEqual([...loadPermissions().all, ...nonIdentityActions({ hasDocuments: true, notify: { slack: true } })].sort());
    for (const sid of ['SendOwnerEmail', 'PublishOwnerMessages', 'ReadSlackWebhooks', 'EncryptFeedMessages']) {
      expect(JSON.stringify(bySid(sid)!.Resource)).not.toContain('"*"');
    }
  });

  test('the feed topic is encrypted and refuses plain HTTP', () => {
    const topics = template.findResources('AWS::SNS::Topic');
    const feed = Object.entries(topics).find(([id]) => id.startsWith('FeedTopic'))![1];
    expect(feed.Properties.KmsMasterKeyId).toBeDefined();
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: [{ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }] },
    });
  });

  test('notify.enabled in the config without the stack prop is refused', () => {
    expect(() => controller({ config: { notify: { enabled: true } } })).toThrow(/stack prop `notify`/);
  });

  test('a domain identity needs a sender of that domain', () => {
    expect(() => controller({ notify: { sesIdentity: 'example.com' } })).toThrow(/emailFrom is needed/);
    expect(() => controller({ notify: { sesIdentity: 'example.com', emailFrom: 'x@evil.com' } })).toThrow(/not an address/);
  });
});
