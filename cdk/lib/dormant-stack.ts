/**
 * DormantStack: the controller, deployed once in the security (controller) account.
 *
 * DynamoDB table, the Rust Lambda, one EventBridge rule per input source plus the sweep and tick
 * schedules, a dead-letter queue, the SSM Automation documents, the controller's least-privilege
 * role, the SSM automation role, and alarms (docs/design.md: 'Event sources', 'State in DynamoDB', 'SSM Automation fallback', 'Deployment').
 */
import * as fs from 'fs';
import * as path from 'path';
import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { buildConfig, DormantConfig, DormantConfigOverrides } from './config';
import { securityHubStatements } from './security-hub';
import { feedKeyStatement, feedTopic, notifyStatements, NotifyProps, senderOf, topicsIn } from './notify';
import {
  ANSWER_ACTIONS,
  answerKey,
  answerStatements,
  answerUrl,
  ANSWERS_ROLE_ENV,
  AnswersProps,
  DEFAULT_ANSWERS_ROLE_NAME,
  FUNCTION_ENV,
  grantAnswerKey,
} from './answers';
import { FALLBACK_ID, FALLBACK_RUN_ACTIONS, RemediationFallback } from './fallback';
import { identityStatements, quarantinePolicy } from './iam-grants';
import { EventPatternJson, findingRulePatterns, FindingRuleKey, ScheduleAction } from './patterns';
import { controllerActions, loadPermissions, PermissionsFile, PERMISSIONS_FILE } from './permissions';

/** Where `scripts/package` writes the arm64 zip the stack deploys. */
export const CARGO_LAMBDA_ZIP = path.join(__dirname, '..', '..', 'target', 'lambda', 'arm64', 'dormant-lambda', 'bootstrap.zip');
/** A stand-in so the app synthesizes before the Rust asset is built. It cannot run. */
export const PLACEHOLDER_ASSET = path.join(__dirname, '..', 'placeholder-asset');

export interface LambdaAsset {
  readonly path: string;
  readonly placeholder: boolean;
}

/** `DORMANT_LAMBDA_ZIP` if set (it must exist), else the cargo-lambda zip if built, else the placeholder. */
export function resolveLambdaAsset(env: NodeJS.ProcessEnv = process.env): LambdaAsset {
  const fromEnv = env.DORMANT_LAMBDA_ZIP;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!fs.existsSync(fromEnv)) {
      throw new Error(`DORMANT_LAMBDA_ZIP=${fromEnv} does not exist`);
    }
    return { path: path.resolve(fromEnv), placeholder: false };
  }
  if (fs.existsSync(CARGO_LAMBDA_ZIP)) {
    return { path: CARGO_LAMBDA_ZIP, placeholder: false };
  }
  return { path: PLACEHOLDER_ASSET, placeholder: true };
}

export const DEFAULT_ROLE_NAMES = {
  controller: 'dormant-controller',
  member: 'dormant-member',
  automation: 'dormant-automation',
  answers: DEFAULT_ANSWERS_ROLE_NAME,
};

/** The sweep fanned out through SQS, one message per account (docs/design.md, 'Multi-account and scale'). */
export interface SweepFanOutProps {
  /** Concurrent invocations the queue may drive (2-1000); must stay below the function's reserved
   * concurrency so findings always find a free slot. @default 2 */
  readonly maxConcurrency?: number;
  /** Sweep requests (accounts) per invocation, swept `max_concurrent_accounts` at a time. @default 1 */
  readonly batchSize?: number;
  /** Receives before a request goes to the sweep dead-letter queue. @default 3 */
  readonly maxReceiveCount?: number;
}

/** The environment variable that switches the Lambda's scheduled sweep to fan-out (src/bin/lambda.rs). */
export const SWEEP_QUEUE_ENV = 'DORMANT_SWEEP_QUEUE_URL';

export interface DormantStackProps extends StackProps {
  /** Configuration overrides (everything but table, event_bus, accounts, fallback.automation_role). */
  readonly config?: DormantConfigOverrides;
  /**
   * Tell each identity's owner (`notify.enabled`): the SES identity messages are sent from and,
   * optionally, the secret with the Slack webhook URLs. The stack creates the feed topic.
   * @default no owner messages
   */
  readonly notify?: NotifyProps;
  /** The bus dormant's own events go to (`event_bus`). @default 'default' */
  readonly eventBusName?: string;
  /** Member account ids; each gets `{ id, role: arn:...:role/<memberRoleName> }` in `accounts`. */
  readonly memberAccounts?: string[];
  /** Optional AWS Organizations id: AssumeRole is then allowed only into roles of that organization. */
  readonly organizationId?: string;
  readonly controllerRoleName?: string;
  readonly memberRoleName?: string;
  readonly automationRoleName?: string;
  /** @default 'dormant-lambda' */
  readonly functionName?: string;
  /** @default resolveLambdaAsset() */
  readonly lambdaAsset?: LambdaAsset;
  /** @default ../remediation-docs */
  readonly remediationDocsDir?: string;
  /** @default 3 */
  readonly reservedConcurrency?: number;
  /** @default THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** @default daily at 03:00 UTC */
  readonly sweepSchedule?: events.Schedule;
  /** @default every 15 minutes */
  readonly tickSchedule?: events.Schedule;
  /** An SNS topic the alarms notify. @default no alarm actions */
  readonly alarmTopicArn?: string;
  /** @default the permissions.json next to package.json */
  readonly permissionsFile?: string;
  /** Fan the scheduled sweep out through an SQS queue, one message per account, consumed by this
   * same function (`true` for the defaults). @default off: one invocation sweeps every account */
  readonly sweepFanOut?: boolean | SweepFanOutProps;
  /** Owners answer from their messages through the function URL of a function of their own
   * (its own role and reserved concurrency), links signed with a key this stack keeps in Secrets
   * Manager (`true` for the defaults). Member accounts need DormantMemberStack's `answers`. @default off */
  readonly answers?: boolean | AnswersProps;
}

/**
 * What the controller role allows beyond `permissions.all`: permissions.json's `controller` actions
 * of the features this stack has, plus the plumbing the Lambda service uses (logs, the sweep
 * queue's event source mapping). The tests hold the role to exactly this.
 */
export function nonIdentityActions(
  opts: { hasDocuments: boolean; organization?: boolean; sweepFanOut?: boolean; securityHub?: boolean; notify?: { slack: boolean }; answers?: boolean },
  permissions: PermissionsFile = loadPermissions(),
): string[] {
  const of = (service: string) => controllerActions(permissions, service);
  return [
    ...of('dynamodb'),
    ...of('events'),
    ...of('sts'),
    ...of('access-analyzer'),
    // The dead-letter queue; with fan-out also the sweep queue (it authorizes SendMessageBatch too).
    ...of('sqs'),
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    ...(opts.hasDocuments ? FALLBACK_RUN_ACTIONS : []),
    ...(opts.organization ? of('organizations') : []),
    ...(opts.sweepFanOut ? SWEEP_CONSUMER_ACTIONS : []),
    // On unless the config turns it off (STACK_DEFAULTS).
    ...(opts.securityHub ?? true ? of('securityhub') : []),
    // Owner messages; the feed topic's key lets the role publish to it.
    ...(opts.notify ? [...of('ses'), ...of('sns'), 'kms:Decrypt', 'kms:GenerateDataKey'] : []),
    ...(opts.notify?.slack ? of('secretsmanager') : []),
    ...(opts.answers ? ANSWER_ACTIONS : []),
  ].sort();
}

/** What the SQS event source mapping grants the function on the sweep queue. */
export const SWEEP_CONSUMER_ACTIONS = [
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
  'sqs:GetQueueAttributes',
  'sqs:GetQueueUrl',
  'sqs:ReceiveMessage',
];

export class DormantStack extends Stack {
  public readonly table: dynamodb.Table;
  public readonly fn: lambda.Function;
  public readonly role: iam.Role;
  public readonly dlq: sqs.Queue;
  public readonly logGroup: logs.LogGroup;
  /** The SSM documents, the automation role and the controller's right to run them. */
  public readonly fallback: RemediationFallback;
  public readonly config: DormantConfig;
  /** The deployed patterns, by rule (finding rules only; the schedules have no pattern). */
  public readonly findingPatterns: Record<FindingRuleKey, EventPatternJson>;
  public readonly findingRules: Record<FindingRuleKey, events.Rule>;
  public readonly scheduleRules: Record<ScheduleAction, events.Rule>;
  public readonly alarms: {
    errors: cloudwatch.Alarm;
    dlq: cloudwatch.Alarm;
    breaker: cloudwatch.Alarm;
    sweepDlq?: cloudwatch.Alarm;
    rejectedSweepRequests?: cloudwatch.Alarm;
    answersErrors?: cloudwatch.Alarm;
    answersThrottles?: cloudwatch.Alarm;
  };
  /** With `sweepFanOut`: the queue of per-account sweep requests and its dead-letter queue. */
  public readonly sweepQueue?: sqs.Queue;
  public readonly sweepDlq?: sqs.Queue;
  public readonly lambdaAsset: LambdaAsset;
  public readonly memberRoleName: string;
  /** With `notify`: the security team's feed of owner messages. */
  public readonly feedTopic?: sns.Topic;
  /** With `answers`: the links' signing key, the answers function, its role and its URL. */
  public readonly answerKey?: secretsmanager.Secret;
  public readonly answerUrl?: lambda.FunctionUrl;
  public readonly answersFn?: lambda.Function;
  public readonly answersRole?: iam.Role;

  constructor(scope: Construct, id: string, props: DormantStackProps = {}) {
    super(scope, id, props);
    const answers: AnswersProps | undefined =
      props.answers === true ? {} : props.answers === false ? undefined : props.answers;
    const names = {
      controller: props.controllerRoleName ?? DEFAULT_ROLE_NAMES.controller,
      member: props.memberRoleName ?? DEFAULT_ROLE_NAMES.member,
      automation: props.automationRoleName ?? DEFAULT_ROLE_NAMES.automation,
      answers: answers?.roleName ?? DEFAULT_ROLE_NAMES.answers,
    };
    this.memberRoleName = names.member;
    const eventBusName = props.eventBusName ?? 'default';
    const permissions = loadPermissions(props.permissionsFile ?? PERMISSIONS_FILE);

    // ---- State (docs/design.md, 'State in DynamoDB') ----
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      timeToLiveAttribute: 'expires_at',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The index names and keys are those of src/adapters/dynamo/ (test/stack.test.ts compares).
    const gsis: [string, string, string][] = [
      ['due', 'due_pk', 'next_due_at'],
      ['by_principal', 'principal', 'subject'],
      ['by_account', 'account', 'stage_subject'],
    ];
    for (const [indexName, hash, range] of gsis) {
      this.table.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: hash, type: dynamodb.AttributeType.STRING },
        sortKey: { name: range, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    // ---- Dead-letter queue: Lambda async failures and EventBridge delivery failures ----
    this.dlq = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    // ---- SSM Automation documents and the role they run as (docs/design.md, 'SSM Automation fallback') ----
    // 'Default' keeps the logical ids the stack gave these resources before (fallback.ts).
    this.fallback = new RemediationFallback(this, FALLBACK_ID, {
      automationRoleName: names.automation,
      actions: permissions.all,
      guards: permissions.guards,
      ownRoleNames: Object.values(names),
      remediationDocsDir: props.remediationDocsDir,
    });

    // ---- The controller's role: exactly what `dormant permissions` lists, plus its plumbing ----
    this.role = new iam.Role(this, 'ControllerRole', {
      roleName: names.controller,
      description: 'dormant: the controller Lambda (permissions from cdk/permissions.json)',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    quarantinePolicy(this);
    for (const s of identityStatements(this, permissions.all, Object.values(names), permissions.guards)) {
      this.role.addToPolicy(s);
    }
    // permissions.json `controller.dynamodb` (BatchWriteItem: a sweep's notice commits, a dry run's audit notes).
    const busArn = eventBusName.startsWith('arn:')
      ? eventBusName
      : this.formatArn({ service: 'events', resource: 'event-bus', resourceName: eventBusName });
    // The state table and dormant's events: the controller's and the answers function's alike.
    const stateAndEvents = () => [
      new iam.PolicyStatement({
        sid: 'StateTable',
        actions: controllerActions(permissions, 'dynamodb'),
        resources: [this.table.tableArn],
      }),
      new iam.PolicyStatement({
        sid: 'StateTableIndexes',
        actions: ['dynamodb:Query'],
        resources: gsis.map(([indexName]) => `${this.table.tableArn}/index/${indexName}`),
      }),
      new iam.PolicyStatement({ sid: 'EmitEvents', actions: ['events:PutEvents'], resources: [busArn] }),
    ];
    for (const st of stateAndEvents()) this.role.addToPolicy(st);
    this.answerKey = answers ? answerKey(this) : undefined;
    if (this.answerKey) grantAnswerKey(this, this.role, this.answerKey);
    let config = buildConfig(
      answers?.baseUrl ? { ...props.config, answers: { ...props.config?.answers, base_url: answers.baseUrl } } : props.config,
      {
      answersKeySource: this.answerKey ? `secretsmanager:${this.answerKey.secretName}` : undefined,
      answersRoleName: answers ? names.answers : undefined,
      table: this.table.tableName,
      event_bus: eventBusName,
      accounts: (props.memberAccounts ?? []).map((acct) => ({
        id: acct,
        role: `arn:${this.partition}:iam::${acct}:role/${names.member}`,
      })),
      automationRoleArn: this.fallback.enabled ? this.fallback.automationRole.roleArn : '',
      memberRoleName: names.member,
      },
    );
    // Owner messages: the controller's grants, and the answers function's (a release it carries
    // out tells the owner).
    let notifyGrants: ((role: iam.Role) => void) | undefined;
    if (props.notify) {
      const feed = feedTopic(this);
      this.feedTopic = feed.topic;
      const n = config.notify;
      config = {
        ...config,
        notify: {
        ...n,
        enabled: true,
        feed: n.feed || `sns:${this.feedTopic.topicArn}`,
        email_from: n.email_from || senderOf(props.notify),
        slack_webhooks_secret: n.slack_webhooks_secret || (props.notify.slackWebhooksSecretArn ?? ''),
        },
      };
      const recipients = [
        config.notify.feed,
        config.notify.fallback,
        ...Object.values(config.notify.routes),
        ...Object.values(config.notify.account_fallback),
      ];
      const topics = [this.feedTopic.topicArn, ...topicsIn(recipients).filter((t) => t !== this.feedTopic?.topicArn)];
      const notifyProps = { ...props.notify, emailFrom: config.notify.email_from };
      notifyGrants = (role) => {
        for (const st of notifyStatements(this, notifyProps, topics)) role.addToPolicy(st);
        role.addToPolicy(feedKeyStatement(feed.key));
      };
      notifyGrants(this.role);
    } else if (config.notify.enabled) {
      throw new Error('config notify.enabled needs the stack prop `notify` (the SES identity, for its grant)');
    }
    this.config = config;
    // Discovered accounts are only known at run time: any account's member role then.
    const discover = this.config.organization.enabled;
    const roleInMembers = (name: string) =>
      props.memberAccounts && props.memberAccounts.length > 0 && !discover
        ? props.memberAccounts.map((acct) => `arn:${this.partition}:iam::${acct}:role/${name}`)
        : [`arn:${this.partition}:iam::*:role/${name}`];
    const assumeMemberRoles = (name: string) =>
      new iam.PolicyStatement({
        sid: 'AssumeMemberRoles',
        actions: ['sts:AssumeRole'],
        resources: roleInMembers(name),
        conditions: props.organizationId ? { StringEquals: { 'aws:ResourceOrgID': props.organizationId } } : undefined,
      });
    this.role.addToPolicy(assumeMemberRoles(names.member));
    // ListAccounts has no resource-level permissions: Resource must be "*".
    const discoverAccounts = () =>
      new iam.PolicyStatement({ sid: 'DiscoverMemberAccounts', actions: ['organizations:ListAccounts'], resources: ['*'] });
    if (discover) this.role.addToPolicy(discoverAccounts());
    // GetFindingV2 enriches Access Analyzer findings (key id, last access); analyzers are regional
    // and named by the event, so any analyzer of this account, in any region.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAccessAnalyzerFindings',
        actions: ['access-analyzer:GetFinding'],
        resources: [this.formatArn({ service: 'access-analyzer', region: '*', resource: 'analyzer', resourceName: '*' })],
      }),
    );
    const securityHub = () => (this.config.security_hub.enabled ? securityHubStatements(this, this.config.security_hub.region) : []);
    for (const st of securityHub()) this.role.addToPolicy(st);
    // GetCallerIdentity needs no permission (AWS answers it even under an explicit deny); the
    // statement documents that the controller calls it. It has no resource type, hence "*".
    const whoAmI = () => new iam.PolicyStatement({ sid: 'WhoAmI', actions: ['sts:GetCallerIdentity'], resources: ['*'] });
    this.role.addToPolicy(whoAmI());
    this.fallback.grantRun(this.role);

    // ---- The Lambda ----
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.logGroup.grantWrite(this.role);

    this.lambdaAsset = props.lambdaAsset ?? resolveLambdaAsset();
    if (this.lambdaAsset.placeholder) {
      const message =
        'dormant: the Lambda asset is the placeholder cdk/placeholder-asset (it fails every invocation). ' +
        'Build the real one with `scripts/package` (target/lambda/arm64/dormant-lambda/bootstrap.zip) ' +
        'or set DORMANT_LAMBDA_ZIP before deploying.';
      Annotations.of(this).addWarningV2('dormant:placeholder-asset', message);
    }

    this.fn = new lambda.Function(this, 'Controller', {
      functionName: props.functionName ?? 'dormant-lambda',
      description: 'dormant: IAM remediation controller (EventBridge findings, sweep, tick)',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(this.lambdaAsset.path),
      role: this.role,
      memorySize: 512,
      timeout: Duration.minutes(15),
      reservedConcurrentExecutions: props.reservedConcurrency ?? 3,
      deadLetterQueue: this.dlq,
      retryAttempts: 2,
      logGroup: this.logGroup,
      environment: {
        DORMANT_CONFIG: this.toJsonString(this.config),
      },
    });

    // ---- Owners' answers: a function of their own (docs/design.md, 'Answers') ----
    if (answers && this.answerKey) {
      const role = new iam.Role(this, 'AnswersRole', {
        roleName: names.answers,
        description: "dormant: the answers function (owners' Keep / Undo / Approve links); no sweep, no SSM start, no queue",
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      });
      const statements = [
        ...answerStatements(this, permissions, Object.values(names)),
        ...stateAndEvents(),
        assumeMemberRoles(names.answers),
        ...(discover ? [discoverAccounts()] : []),
        whoAmI(),
        ...securityHub(),
      ];
      for (const st of statements) role.addToPolicy(st);
      notifyGrants?.(role);
      grantAnswerKey(this, role, this.answerKey);
      this.fallback.grantStop(role);
      const logGroup = new logs.LogGroup(this, 'AnswersLogGroup', {
        retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      logGroup.grantWrite(role);
      this.answersRole = role;
      this.answersFn = new lambda.Function(this, 'Answers', {
        functionName: answers.functionName ?? 'dormant-answers',
        description: "dormant: owners' answers (the function URL of the links messages carry)",
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(this.lambdaAsset.path),
        role,
        memorySize: 512,
        // Keep evaluates the identity (Access Advisor included) and releases it; an owner waits.
        timeout: Duration.minutes(2),
        reservedConcurrentExecutions: answers.reservedConcurrency ?? 2,
        logGroup,
        environment: {
          DORMANT_CONFIG: this.toJsonString(this.config),
          [FUNCTION_ENV]: 'answers',
          [ANSWERS_ROLE_ENV]: names.answers,
        },
      });
      this.answerUrl = answerUrl(this, this.answersFn);
    }

    // ---- Sweep fan-out through SQS (docs/design.md, 'Multi-account and scale') ----
    const fanOut: SweepFanOutProps | undefined =
      props.sweepFanOut === true ? {} : props.sweepFanOut === false ? undefined : props.sweepFanOut;
    let sweepDlqAlarm: cloudwatch.Alarm | undefined;
    if (fanOut) {
      const reserved = props.reservedConcurrency ?? 3;
      const maxConcurrency = fanOut.maxConcurrency ?? 2;
      if (maxConcurrency < 2 || maxConcurrency >= reserved) {
        throw new Error(
          `sweepFanOut.maxConcurrency must be at least 2 and below reservedConcurrency (${reserved}) so findings keep a slot; got ${maxConcurrency}`,
        );
      }
      this.sweepDlq = new sqs.Queue(this, 'SweepDeadLetterQueue', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      const timeout = this.fn.timeout ?? Duration.minutes(15);
      this.sweepQueue = new sqs.Queue(this, 'SweepQueue', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        // AWS: at least six times the function timeout, or a slow batch is delivered twice.
        visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
        // A request older than a day is superseded by the next daily sweep.
        retentionPeriod: Duration.days(1),
        deadLetterQueue: { queue: this.sweepDlq, maxReceiveCount: fanOut.maxReceiveCount ?? 3 },
      });
      this.fn.addEventSource(
        new SqsEventSource(this.sweepQueue, {
          batchSize: fanOut.batchSize ?? 1,
          reportBatchItemFailures: true,
          maxConcurrency,
        }),
      );
      // Only SendMessage (which also authorizes SendMessageBatch); grantSendMessages would add reads.
      this.role.addToPolicy(
        new iam.PolicyStatement({ sid: 'QueueSweepRequests', actions: ['sqs:SendMessage'], resources: [this.sweepQueue.queueArn] }),
      );
      this.fn.addEnvironment(SWEEP_QUEUE_ENV, this.sweepQueue.queueUrl);
      sweepDlqAlarm = new cloudwatch.Alarm(this, 'SweepDeadLetterQueueAlarm', {
        alarmDescription: 'dormant: per-account sweep requests failed every retry (an account unreachable or failing)',
        metric: this.sweepDlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    // ---- EventBridge: one rule per source (docs/design.md, 'Event sources') ----
    const target = (event?: events.RuleTargetInput) =>
      new targets.LambdaFunction(this.fn, {
        event,
        deadLetterQueue: this.dlq,
        retryAttempts: 8,
        maxEventAge: Duration.hours(2),
      });
    this.findingPatterns = findingRulePatterns(this.config.sources.config_rules);
    const descriptions: Record<FindingRuleKey, string> = {
      config: 'dormant: AWS Config NON_COMPLIANT evaluations of the configured inactivity rules',
      accessAnalyzer: 'dormant: IAM Access Analyzer unused-access findings (roles, keys, passwords)',
      securityHub: 'dormant: Security Hub failed, active findings on IAM users, roles and access keys',
      securityHubV2: 'dormant: Security Hub findings in the V2 (OCSF) format',
      cloudTrailTags: 'dormant: a dormant:* tag was added to or removed from a role or user',
    };
    const ruleIds: Record<FindingRuleKey, string> = {
      config: 'ConfigComplianceRule',
      accessAnalyzer: 'AccessAnalyzerUnusedRule',
      securityHub: 'SecurityHubFindingsRule',
      securityHubV2: 'SecurityHubFindingsV2Rule',
      cloudTrailTags: 'CloudTrailTagChangeRule',
    };
    const findingRules = {} as Record<FindingRuleKey, events.Rule>;
    for (const key of Object.keys(this.findingPatterns) as FindingRuleKey[]) {
      const rule = new events.Rule(this, ruleIds[key], {
        description: descriptions[key],
        eventPattern: toCdkPattern(this.findingPatterns[key]),
        targets: [target()],
      });
      findingRules[key] = rule;
    }
    this.findingRules = findingRules;

    this.scheduleRules = {
      sweep: new events.Rule(this, 'SweepSchedule', {
        description: 'dormant: daily sweep of every identity',
        schedule: props.sweepSchedule ?? events.Schedule.cron({ minute: '0', hour: '3' }),
        targets: [target(scheduledEvent('sweep'))],
      }),
      tick: new events.Rule(this, 'TickSchedule', {
        description: 'dormant: advance identities whose next step is due',
        schedule: props.tickSchedule ?? events.Schedule.rate(Duration.minutes(15)),
        targets: [target(scheduledEvent('tick'))],
      }),
    };

    // ---- Alarms ----
    const period = Duration.minutes(5);
    const errors = new cloudwatch.Alarm(this, 'LambdaErrorsAlarm', {
      alarmDescription: 'dormant: the controller Lambda returned errors',
      metric: this.fn.metricErrors({ period, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const dlqAlarm = new cloudwatch.Alarm(this, 'DeadLetterQueueAlarm', {
      alarmDescription: 'dormant: events are waiting in the dead-letter queue',
      metric: this.dlq.metricApproximateNumberOfMessagesVisible({ period, statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 0,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // The engine logs "circuit breaker stops the step" (src/app/engine/step.rs) for every step the
    // tripped breaker holds back.
    const breakerFilter = new logs.MetricFilter(this, 'BreakerMetricFilter', {
      logGroup: this.logGroup,
      filterPattern: logs.FilterPattern.literal(BREAKER_FILTER_PATTERN),
      metricNamespace: 'Dormant',
      metricName: 'CircuitBreakerStops',
      metricValue: '1',
    });
    const breaker = new cloudwatch.Alarm(this, 'CircuitBreakerAlarm', {
      alarmDescription: 'dormant: the circuit breaker is holding back steps (`dormant breaker status`)',
      metric: breakerFilter.metric({ period, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // The sweep queue's consumer logs "sweep request rejected: …" (src/app/sweep_queue.rs) for
    // each message it drops: malformed, or for an account dormant does not manage. They are
    // never retried, so they never reach the queue's dead-letter queue: count them here.
    let rejectedSweepRequests: cloudwatch.Alarm | undefined;
    if (this.sweepQueue) {
      const rejectedFilter = new logs.MetricFilter(this, 'RejectedSweepRequestsMetricFilter', {
        logGroup: this.logGroup,
        filterPattern: logs.FilterPattern.literal(REJECTED_SWEEP_FILTER_PATTERN),
        metricNamespace: 'Dormant',
        metricName: 'RejectedSweepRequests',
        metricValue: '1',
      });
      rejectedSweepRequests = new cloudwatch.Alarm(this, 'RejectedSweepRequestsAlarm', {
        alarmDescription: 'dormant: the sweep queue received messages it cannot use (malformed, or for an account dormant does not manage)',
        metric: rejectedFilter.metric({ period, statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    this.alarms = {
      errors,
      dlq: dlqAlarm,
      breaker,
      ...(sweepDlqAlarm ? { sweepDlq: sweepDlqAlarm } : {}),
      ...(rejectedSweepRequests ? { rejectedSweepRequests } : {}),
      ...(this.answersFn
        ? {
            answersErrors: new cloudwatch.Alarm(this, 'AnswersErrorsAlarm', {
              alarmDescription: 'dormant: the answers function failed (a request that is not a function URL one, or a crash)',
              metric: this.answersFn.metricErrors({ period, statistic: cloudwatch.Stats.SUM }),
              threshold: 1,
              evaluationPeriods: 1,
              comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
              treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
            }),
            // The public URL under a flood: requests beyond the reserved concurrency are refused
            // (owners' clicks among them), the controller unaffected.
            answersThrottles: new cloudwatch.Alarm(this, 'AnswersThrottlesAlarm', {
              alarmDescription:
                "dormant: the answers function refused requests beyond its reserved concurrency (a flood of its public URL; owners' answers may be refused too)",
              metric: this.answersFn.metricThrottles({ period, statistic: cloudwatch.Stats.SUM }),
              threshold: 10,
              evaluationPeriods: 1,
              comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
              treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
            }),
          }
        : {}),
    };
    if (props.alarmTopicArn) {
      const topic = sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn);
      for (const alarm of Object.values(this.alarms)) alarm.addAlarmAction(new cwActions.SnsAction(topic));
    }

    new CfnOutput(this, 'TableName', { value: this.table.tableName, description: 'config: table' });
    new CfnOutput(this, 'FunctionName', { value: this.fn.functionName });
    new CfnOutput(this, 'ControllerRoleArn', {
      value: this.role.roleArn,
      description: 'trusted by DormantMemberStack (parameter ControllerAccountId)',
    });
    new CfnOutput(this, 'AutomationRoleArn', { value: this.fallback.automationRole.roleArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.dlq.queueUrl });
    if (this.sweepQueue) {
      new CfnOutput(this, 'SweepQueueUrl', { value: this.sweepQueue.queueUrl, description: `env ${SWEEP_QUEUE_ENV}` });
    }
  }
}

/** A term pattern: matches log events containing the phrase, in text or JSON logs alike. */
export const BREAKER_FILTER_PATTERN = '"circuit breaker"';
/** The sweep queue's dropped messages (a term pattern, like the breaker's). */
export const REJECTED_SWEEP_FILTER_PATTERN = '"sweep request rejected"';

/**
 * The scheduled-event envelope the Lambda expects (`source`, `detail-type`, `id`, `detail.action`).
 * A scheduled rule's own event has `detail: {}`; an input transformer rebuilds the envelope with the
 * real event id, account, time and region, and puts the action into `detail`.
 */
export function scheduledEvent(action: ScheduleAction): events.RuleTargetInput {
  return events.RuleTargetInput.fromObject({
    version: '0',
    id: events.EventField.eventId,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: events.EventField.account,
    time: events.EventField.time,
    region: events.EventField.region,
    detail: { action },
  });
}

/** CloudFormation-shaped pattern → CDK's EventPattern (only `detail-type` is renamed). */
export function toCdkPattern(p: EventPatternJson): events.EventPattern {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    out[k === 'detail-type' ? 'detailType' : k] = v;
  }
  return out as events.EventPattern;
}
