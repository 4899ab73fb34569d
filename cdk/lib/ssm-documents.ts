/**
 * SSM Automation documents from `remediation-docs/` (docs/design.md, 'SSM Automation fallback'): one `AWS::SSM::Document`
 * per `*.yaml` file present at synth time, named after the file (`Dormant-QuarantineIdentity.yaml`
 * becomes the document `Dormant-QuarantineIdentity`), so the controller can start it by name.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import * as YAML from 'yaml';

export const DEFAULT_DOCS_DIR = path.join(__dirname, '..', '..', 'remediation-docs');

export interface RemediationDocFile {
  /** Document name: the file name without `.yaml`. */
  readonly name: string;
  readonly file: string;
  /** The parsed YAML (CloudFormation serialises it back as YAML because DocumentFormat is YAML). */
  readonly content: Record<string, unknown>;
}

/** SSM document names: letters, digits, `_`, `-`, `.`; 3 to 128 characters; no `aws`/`amazon` prefix. */
const DOC_NAME = /^[a-zA-Z0-9_.-]{3,128}$/;

export function readRemediationDocs(dir: string = DEFAULT_DOCS_DIR): RemediationDocFile[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const file = path.join(dir, f);
      const name = f.slice(0, -'.yaml'.length);
      if (!DOC_NAME.test(name) || /^(aws|amazon)/i.test(name)) {
        throw new Error(`${file}: '${name}' is not a valid SSM document name`);
      }
      const content: unknown = YAML.parse(fs.readFileSync(file, 'utf8'));
      if (content === null || typeof content !== 'object' || Array.isArray(content)) {
        throw new Error(`${file}: not a YAML mapping`);
      }
      const doc = content as Record<string, unknown>;
      if (String(doc.schemaVersion) !== '0.3') {
        throw new Error(`${file}: schemaVersion must be '0.3' for an Automation document (found ${String(doc.schemaVersion)})`);
      }
      return { name, file, content: doc };
    });
}

export interface RemediationDocumentsProps {
  readonly docs: RemediationDocFile[];
}

/** The documents as CloudFormation resources, plus the ARNs needed to start them. */
export class RemediationDocuments extends Construct {
  public readonly names: string[];

  constructor(scope: Construct, id: string, props: RemediationDocumentsProps) {
    super(scope, id);
    this.names = props.docs.map((d) => d.name);
    for (const doc of props.docs) {
      new ssm.CfnDocument(this, doc.name, {
        name: doc.name,
        documentType: 'Automation',
        documentFormat: 'YAML',
        content: doc.content,
        updateMethod: 'NewVersion',
      });
    }
  }

  /** Resources `ssm:StartAutomationExecution` needs: the document and its automation definition. */
  public startArns(): string[] {
    const stack = Stack.of(this);
    return this.names.flatMap((name) => [
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
      stack.formatArn({ service: 'ssm', resource: 'automation-definition', resourceName: `${name}:*` }),
    ]);
  }

  public executionArn(): string {
    return Stack.of(this).formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' });
  }
}
