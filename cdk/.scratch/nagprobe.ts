import { App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DormantStack, PLACEHOLDER_ASSET } from '../lib/dormant-stack';
import { DormantMemberStack } from '../lib/member-stack';
const app = new App();
const s = new DormantStack(app, 'DormantStack', { lambdaAsset: { path: PLACEHOLDER_ASSET, placeholder: true } });
const m = new DormantMemberStack(app, 'DormantMemberStack');
import { acknowledgeNagFindings } from "../lib/nag";
acknowledgeNagFindings(s); acknowledgeNagFindings(m);
app.synth();
for (const st of [s, m]) {
  const r = new AwsSolutionsChecks().validateScope(st);
  for (const v of r.violations) console.log(v.severity, v.ruleName, v.violatingResources.map((x: any) => x.constructPath).join(' | '));
}
