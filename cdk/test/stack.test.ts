import * as fs from 'fs';
import * as path from 'path';
import { Match } from 'aws-cdk-lib/assertions';
import { BREAKER_FILTER_PATTERN, resolveLambdaAsset, PLACEHOLDER_ASSET } from '../lib/dormant-stack';
import { readRemediationDocs } from '../lib/ssm-documents';
import { applyInputTransformer, controller, loadEvent, member, REPO_ROOT, tempDir } from './helpers';

const { stack, template } = controller();

describe('DynamoDB table', () => {
  test('on-demand, PITR, deletion protection, TTL on expires_at, pk/sk strings, retained', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
        TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    });
  });

  const gsis = () => {
    const table = Object.values(template.findResources('AWS::DynamoDB::Table'))[0];
    return (table.Properties.GlobalSecondaryIndexes as {
      IndexName: string;
      KeySchema: { AttributeName: string; KeyType: string }[];
      Projection: { ProjectionType: string };
    }[]).map((g) => ({
      name: g.IndexName,
      hash: g.KeySchema.find((k) => k.KeyType === 'HASH')?.AttributeName,
      range: g.KeySchema.find((k) => k.KeyType === 'RANGE')?.AttributeName,
      projection: g.Projection.ProjectionType,
    }));
  };

  test('exactly the three GSIs, projection ALL, string keys', () => {
    expect(gsis()).toEqual([
      { name: 'due', hash: 'due_pk', range: 'next_due_at', projection: 'ALL' },
      { name: 'by_principal', hash: 'principal', range: 'subject', projection: 'ALL' },
      { name: 'by_account', hash: 'account', range: 'stage_subject', projection: 'ALL' },
    ]);
    const table = Object.values(template.findResources('AWS::DynamoDB::Table'))[0];
    for (const def of table.Properties.AttributeDefinitions) expect(def.AttributeType).toBe('S');
  });

  // The controller queries these indexes (src/adapters/dynamo/); a key that differs there breaks
  // its queries in AWS, so the two definitions are compared here.
  test('GSIs are the ones src/adapters/dynamo/ creates and queries', () => {
    const dir = path.join(REPO_ROOT, 'src', 'adapters', 'dynamo');
    const src = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.rs'))
      .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
      .join('\n');
    const consts = new Map([...src.matchAll(/pub const (\w+): &str = "([^"]+)";/g)].map((m) => [m[1], m[2]]));
    const rust = [...src.matchAll(/gsi\((\w+),\s*"(\w+)",\s*"(\w+)"\)/g)].map((m) => ({
      name: consts.get(m[1]),
      hash: m[2],
      range: m[3],
      projection: 'ALL',
    }));
    expect(rust.length).toBeGreaterThan(0); // if this fails, the Rust side changed shape: update this test
    expect(gsis()).toEqual(rust);
    expect(consts.get('TTL_ATTRIBUTE')).toBe('expires_at');
  });
});

describe('Lambda', () => {
  test('provided.al2023 on arm64, bootstrap handler, 15 min, 512 MB, small reserved concurrency', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'dormant-lambda',
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
      Timeout: 900,
      MemorySize: 512,
      ReservedConcurrentExecutions: 3,
      DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DeadLetterQueue'), 'Arn'] } },
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^LogGroup') } },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2 });
  });

  test('DORMANT_CONFIG carries the table, bus, rule names and automation role', () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
    const joined = fn.Properties.Environment.Variables.DORMANT_CONFIG['Fn::Join'][1] as unknown[];
    // Replace the CloudFormation references by markers and parse the JSON.
    const text = joined
      .map((part) => (typeof part === 'string' ? part : 'Ref' in (part as object) ? 'REF:TABLE' : 'GETATT:AUTOMATION_ROLE'))
      .join('');
    const config = JSON.parse(text);
    expect(config.table).toBe('REF:TABLE');
    expect(config.event_bus).toBe('default');
    expect(config.fallback.automation_role).toBe('GETATT:AUTOMATION_ROLE');
    expect(config.sources.config_rules).toEqual(['iam-user-unused-credentials-check', 'iam-role-last-used']);
    expect(config.accounts).toEqual([]);
    expect(config.security_hub).toEqual({ enabled: true, region: '' });
  });

  test('log group has a retention and is kept on stack deletion', () => {
    template.hasResource('AWS::Logs::LogGroup', {
      DeletionPolicy: 'Retain',
      Properties: { RetentionInDays: 90 },
    });
  });

  test('the asset falls back to the placeholder, which refuses to run', () => {
    expect(stack.lambdaAsset.placeholder).toBe(true);
    const script = fs.readFileSync(path.join(PLACEHOLDER_ASSET, 'bootstrap'), 'utf8');
    expect(script).toMatch(/build the real asset first/);
    expect(script).toMatch(/exit 1/);
    expect(fs.statSync(path.join(PLACEHOLDER_ASSET, 'bootstrap')).mode & 0o111).not.toBe(0);
    const warnings = stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning');
    expect(warnings.map((w) => String(w.data))).toEqual([expect.stringMatching(/placeholder/)]);
  });

  test('resolveLambdaAsset: DORMANT_LAMBDA_ZIP wins and must exist', () => {
    const dir = tempDir({ 'bootstrap.zip': 'zip' });
    const zip = path.join(dir, 'bootstrap.zip');
    expect(resolveLambdaAsset({ DORMANT_LAMBDA_ZIP: zip })).toEqual({ path: zip, placeholder: false });
    expect(() => resolveLambdaAsset({ DORMANT_LAMBDA_ZIP: path.join(dir, 'missing.zip') })).toThrow(/does not exist/);
    const real = { path: zip, placeholder: false };
    const c = controller({ lambdaAsset: real });
    expect(c.stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning')).toEqual([]);
  });
});

describe('dead-letter queue', () => {
  test('encrypted, SSL enforced, 14 days', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sqs:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('every rule targets the Lambda with the DLQ and a retry policy', () => {
    const rules = template.findResources('AWS::Events::Rule');
    expect(Object.keys(rules)).toHaveLength(7);
    for (const rule of Object.values(rules)) {
      const targets = rule.Properties.Targets as Record<string, unknown>[];
      expect(targets).toHaveLength(1);
      expect(targets[0]).toMatchObject({
        Arn: { 'Fn::GetAtt': [expect.stringMatching(/^Controller/), 'Arn'] },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^DeadLetterQueue/), 'Arn'] } },
        RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
      });
    }
    // EventBridge may invoke the function, once per rule, scoped to that rule.
    const perms = Object.values(template.findResources('AWS::Lambda::Permission'));
    expect(perms).toHaveLength(7);
    for (const p of perms) expect(p.Properties.Principal).toBe('events.amazonaws.com');
  });
});

describe('schedules', () => {
  const scheduled = (expr: string) => {
    const rules = Object.values(template.findResources('AWS::Events::Rule')).filter(
      (r) => r.Properties.ScheduleExpression === expr,
    );
    expect(rules).toHaveLength(1);
    return rules[0].Properties.Targets[0].InputTransformer;
  };
  const raw = loadEvent('scheduled-event-raw');

  test.each([
    ['cron(0 3 * * ? *)', 'sweep'],
    ['rate(15 minutes)', 'tick'],
  ])('%s delivers the scheduled-event envelope with detail.action = %s', (expr, action) => {
    const delivered = applyInputTransformer(scheduled(expr), raw);
    // test/events/scheduled-<action>-delivered.json is this output (the classifier accepts it).
    expect(delivered).toEqual(loadEvent(`scheduled-${action}-delivered`));
    expect(delivered).toEqual({
      version: '0',
      id: raw.id,
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: raw.account,
      time: raw.time,
      region: raw.region,
      detail: { action },
    });
  });
});

describe('alarms', () => {
  test('Lambda errors, DLQ depth > 0, circuit breaker', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 3);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Dormant',
      MetricName: 'CircuitBreakerStops',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: BREAKER_FILTER_PATTERN,
      LogGroupName: { Ref: Match.stringLikeRegexp('^LogGroup') },
      MetricTransformations: [{ MetricNamespace: 'Dormant', MetricName: 'CircuitBreakerStops', MetricValue: '1' }],
    });
  });

  test('the breaker filter matches the line the engine logs', () => {
    // CloudWatch term pattern '"circuit breaker"': the phrase, case-sensitive, in the message the
    // engine logs when the breaker stops a step (src/app/engine/).
    const phrase = JSON.parse(BREAKER_FILTER_PATTERN) as string;
    const dir = path.join(REPO_ROOT, 'src', 'app', 'engine');
    const messages = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.rs'))
      .flatMap((f) => [...fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/warn!\([^;]*?"([^"]+)",?\s*\);/gs)].map((m) => m[1]));
    expect(messages).toContain('circuit breaker stops the step');
    expect(messages.filter((m) => m.includes(phrase)).length).toBeGreaterThan(0);
  });

  test('alarm actions only when a topic is given', () => {
    for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(a.Properties.AlarmActions).toBeUndefined();
    }
    const withTopic = controller({ alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:security-alerts' });
    for (const a of Object.values(withTopic.template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(a.Properties.AlarmActions).toEqual(['arn:aws:sns:us-east-1:123456789012:security-alerts']);
    }
  });
});

describe('SSM Automation documents', () => {
  const DOC = [
    "schemaVersion: '0.3'",
    'description: test document',
    'assumeRole: "{{ AutomationAssumeRole }}"',
    'parameters:',
    '  AutomationAssumeRole: { type: String }',
    'mainSteps:',
    '  - name: noop',
    '    action: aws:sleep',
    '    inputs: { Duration: PT1S }',
    '',
  ].join('\n');

  test('one Automation document per yaml file in the folder, named after it, content from the file', () => {
    const dir = tempDir({ 'Dormant-Test.yaml': DOC, 'README.md': '# not a document', 'notes.yml': 'x: 1' });
    const { template: t } = controller({ remediationDocsDir: dir });
    t.resourceCountIs('AWS::SSM::Document', 1);
    t.hasResourceProperties('AWS::SSM::Document', {
      Name: 'Dormant-Test',
      DocumentType: 'Automation',
      DocumentFormat: 'YAML',
      UpdateMethod: 'NewVersion',
      Content: { schemaVersion: '0.3', description: 'test document', mainSteps: [{ name: 'noop', action: 'aws:sleep' }] },
    });
  });

  test('an empty folder gives no document and no SSM permissions', () => {
    const { template: t } = controller({ remediationDocsDir: tempDir({}) });
    t.resourceCountIs('AWS::SSM::Document', 0);
    expect(JSON.stringify(t.toJSON())).not.toMatch(/ssm:StartAutomationExecution|iam:PassRole/);
  });

  test('a document that is not schemaVersion 0.3 stops the synth', () => {
    const dir = tempDir({ 'Dormant-Bad.yaml': DOC.replace("'0.3'", "'2.2'") });
    expect(() => controller({ remediationDocsDir: dir })).toThrow(/schemaVersion/);
  });

  test('the repository folder: every yaml there is deployed, in both stacks', () => {
    const docs = readRemediationDocs();
    const names = docs.map((d) => d.name).sort();
    const deployed = (t: typeof template) =>
      Object.values(t.findResources('AWS::SSM::Document'))
        .map((d) => d.Properties.Name as string)
        .sort();
    expect(deployed(template)).toEqual(names);
    expect(deployed(member().template)).toEqual(names);
    for (const d of docs) {
      template.hasResourceProperties('AWS::SSM::Document', { Name: d.name, Content: d.content });
    }
  });
});

describe('DormantMemberStack', () => {
  const { template: m } = member();

  test('the member role trusts only the controller role of the controller account', () => {
    m.hasParameter('ControllerAccountId', { Type: 'String', AllowedPattern: '^\\d{12}$' });
    m.hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'dormant-member',
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Effect: 'Allow',
            Action: 'sts:AssumeRole',
            Principal: {
              AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'ControllerAccountId' }, ':root']] },
            },
            Condition: {
              ArnEquals: {
                'aws:PrincipalArn': {
                  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'ControllerAccountId' }, ':role/dormant-controller']],
                },
              },
            },
          },
        ],
      },
    });
  });

  test('the automation roles are for SSM in their own account', () => {
    for (const t of [m, template]) {
      t.hasResourceProperties('AWS::IAM::Role', {
        RoleName: 'dormant-automation',
        AssumeRolePolicyDocument: {
          Statement: [
            {
              Effect: 'Allow',
              Action: 'sts:AssumeRole',
              Principal: { Service: 'ssm.amazonaws.com' },
              Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
            },
          ],
        },
      });
    }
  });

  test('controllerAccountId becomes the parameter default', () => {
    member({ controllerAccountId: '111122223333' }).template.hasParameter('ControllerAccountId', { Default: '111122223333' });
  });
});

describe('stack props', () => {
  test('memberAccounts pin the accounts in the config and the AssumeRole resources', () => {
    const { template: t } = controller({ memberAccounts: ['111122223333', '444455556666'] });
    const text = JSON.stringify(t.toJSON());
    expect(text).toContain('\\"accounts\\":[{\\"id\\":\\"111122223333\\",\\"role\\":\\"arn:');
    expect(text).not.toContain('iam::*:role/dormant-member');
  });

  test('configuration overrides reach DORMANT_CONFIG; unknown keys are refused', () => {
    const { template: t } = controller({ config: { dry_run: true, ladder: { delete: 'approval' } } });
    const text = JSON.stringify(t.toJSON());
    expect(text).toContain('\\"dry_run\\":true');
    expect(text).toContain('\\"delete\\":\\"approval\\"');
    expect(() => controller({ config: { ladder: { bogus: 1 } } as never })).toThrow(/ladder.bogus/);
  });

  test('the Config rule follows sources.config_rules', () => {
    const { stack: s } = controller({ config: { sources: { config_rules: ['OrgConfigRule-iam-role-last-used-abc'] } } });
    expect(s.findingPatterns.config).toMatchObject({ detail: { configRuleName: ['OrgConfigRule-iam-role-last-used-abc'] } });
  });
});
