/**
 * EventBridge event patterns, one rule per input source of docs/design.md, 'Event sources'. They are exported so the
 * tests can match sample events against exactly what is deployed. The patterns are written in the
 * CloudFormation shape (`detail-type`, not `detailType`).
 *
 * The patterns nominate; the Lambda's classifier decides. What a pattern cannot express is left to
 * the classifier (see README "What the rules filter, and what they leave to the Lambda").
 */

export type EventPatternJson = { [key: string]: unknown };

export type FindingRuleKey =
  | 'config'
  | 'accessAnalyzer'
  | 'securityHub'
  | 'securityHubV2'
  | 'cloudTrailTags';

export const UNUSED_ACCESS_FINDING_TYPES = ['UnusedIAMRole', 'UnusedIAMUserAccessKey', 'UnusedIAMUserPassword'];
export const SECURITY_HUB_RESOURCE_TYPES = ['AwsIamUser', 'AwsIamRole', 'AwsIamAccessKey'];
export const CONFIG_RESOURCE_TYPES = ['AWS::IAM::User', 'AWS::IAM::Role'];
export const TAG_EVENT_NAMES = ['TagRole', 'UntagRole', 'TagUser', 'UntagUser'];
/** Tags dormant reads (exemptions) and writes (stage): `dormant:*`. */
export const TAG_PREFIX = 'dormant:';

export function findingRulePatterns(configRuleNames: readonly string[]): Record<FindingRuleKey, EventPatternJson> {
  if (configRuleNames.length === 0) {
    throw new Error('sources.config_rules is empty: the AWS Config rule would match nothing');
  }
  return {
    config: {
      source: ['aws.config'],
      'detail-type': ['Config Rules Compliance Change'],
      detail: {
        configRuleName: [...configRuleNames],
        resourceType: [...CONFIG_RESOURCE_TYPES],
        newEvaluationResult: { complianceType: ['NON_COMPLIANT'] },
      },
    },
    accessAnalyzer: {
      source: ['aws.access-analyzer'],
      'detail-type': ['Unused Access Finding for IAM entities'],
      detail: {
        findingType: [...UNUSED_ACCESS_FINDING_TYPES],
        status: ['ACTIVE'],
        // A finding the analyzer could not complete carries `error` (a string, e.g. INTERNAL_ERROR).
        error: [{ exists: false }],
      },
    },
    securityHub: {
      source: ['aws.securityhub'],
      'detail-type': ['Security Hub Findings - Imported'],
      detail: {
        findings: {
          Compliance: { Status: ['FAILED'] },
          RecordState: ['ACTIVE'],
          Resources: { Type: [...SECURITY_HUB_RESOURCE_TYPES] },
          // Not suppressed. AWS sends one finding per event, so this is exact there; with several
          // findings in one event it passes if any finding is not suppressed (the classifier checks
          // each). A finding without Workflow.Status (older ASFF) is let through, not dropped.
          $or: [{ Workflow: { Status: [{ 'anything-but': 'SUPPRESSED' }] } }, { Workflow: { Status: [{ exists: false }] } }],
        },
      },
    },
    // The OCSF-shaped V2 findings: only source and detail-type are filtered (the classifier reads
    // the finding), so this rule is deliberately loose.
    securityHubV2: {
      source: ['aws.securityhub'],
      'detail-type': ['Findings Imported V2'],
    },
    // Only successful calls that add or remove a dormant:* tag. Tag* carries
    // requestParameters.tags[].key, Untag* carries requestParameters.tagKeys[]. The prefix ignores
    // case because IAM tag keys are case-insensitive and the classifier counts `Dormant:Exempt` too.
    cloudTrailTags: {
      source: ['aws.iam'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: {
        eventSource: ['iam.amazonaws.com'],
        errorCode: [{ exists: false }],
        $or: [
          {
            eventName: ['TagRole', 'TagUser'],
            requestParameters: { tags: { key: [{ prefix: { 'equals-ignore-case': TAG_PREFIX } }] } },
          },
          {
            eventName: ['UntagRole', 'UntagUser'],
            requestParameters: { tagKeys: [{ prefix: { 'equals-ignore-case': TAG_PREFIX } }] },
          },
        ],
      },
    },
  };
}

export type ScheduleAction = 'sweep' | 'tick';
