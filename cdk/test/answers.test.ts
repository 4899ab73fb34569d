import { Match } from 'aws-cdk-lib/assertions';
import { nonIdentityActions } from '../lib/dormant-stack';
import { loadPermissions } from '../lib/permissions';
import { readRemediationDocs } from '../lib/ssm-documents';
import { asList, controller, roleStatements } from './helpers';

const hasDocuments = readRemediationDocs().length > 0;

describe("owners' answers (function URL + signing key)", () => {
  const { template } = controller({ answers: { baseUrl: 'https://answers.example.com' } });

  test('a function URL without IAM auth on the controller, whose concurrency stays reserved', () => {
    template.resourceCountIs('AWS::Lambda::Url', 1);
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 3 });
    template.hasOutput('AnswerUrl', {});
  });

  test('the signing key is a generated Secrets Manager secret the config points to', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: 64, ExcludePunctuation: true }),
    });
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
    const text = JSON.stringify(fn.Properties.Environment.Variables.DORMANT_CONFIG);
    expect(text).toContain('\\"key_source\\":\\"secretsmanager:');
    expect(text).toContain('\\"base_url\\":\\"https://answers.example.com\\"');
  });

  test('the role reads that secret (directly and through SSM) and nothing more', () => {
    const statements = roleStatements(template, 'ControllerRole');
    const allowed = [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => asList(s.Action)))].sort();
    expect(allowed).toEqual([...loadPermissions().all, ...nonIdentityActions({ hasDocuments, answers: true })].sort());
    expect(statements.find((s) => s.Sid === 'ReadAnswerKey')?.Resource).toEqual({ Ref: expect.stringMatching(/^AnswerSigningKey/) });
    expect(JSON.stringify(statements.find((s) => s.Sid === 'ReadAnswerKeyThroughSsm')?.Resource)).toContain(
      'parameter/aws/reference/secretsmanager/',
    );
  });

  test('off by default: no URL, no secret, no key in the config', () => {
    const { template: plain } = controller();
    plain.resourceCountIs('AWS::Lambda::Url', 0);
    plain.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });
});
