// Runs Automation documents with @cdklabs/cdk-ssm-documents' simulator, for test/simulate.py.
//
// Protocol: one JSON request per stdin line, {"document": PATH, "inputs": {...}}; one JSON
// answer per stdout line, {"status": "Success"|"Failed", "outputs": {...}, "steps": [...],
// "error": "..."}. The simulator's own chatter (it console.logs every step) goes to stderr.
//
// aws:executeAwsApi steps call AWS for real through the AWS SDK for JavaScript v3, which honours
// AWS_ENDPOINT_URL (moto in the tests). aws:executeScript steps run the document's Python with
// the `python3` found on PATH (the tests put the project venv, with boto3, first).
'use strict';

const readline = require('node:readline');
const answer = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
console.info = console.log;

const { Stack } = require('aws-cdk-lib');
const { AwsApiStep, ResponseCode, Simulation, StringDocument } = require('@cdklabs/cdk-ssm-documents');

// Simulator bug (0.0.74): an aws:executeAwsApi step that declares no `outputs` crashes in
// getSelectedResponse (undefined.forEach). In SSM, outputs are optional: treat absent as none.
const declaredOutputs = AwsApiStep.prototype.listUserOutputs;
AwsApiStep.prototype.listUserOutputs = function listUserOutputs() {
  return declaredOutputs.call(this) ?? [];
};

function run({ document, inputs }) {
  // A fresh Stack each time: steps are constructs named after the step, unique per scope.
  const doc = StringDocument.fromFile(new Stack(), 'Document', document);
  const result = Simulation.ofAutomation(doc, {}).simulate({ ...inputs });
  const ok = result.responseCode === ResponseCode.SUCCESS;
  return {
    status: ok ? 'Success' : ResponseCode[result.responseCode] ?? String(result.responseCode),
    outputs: result.outputs ?? {},
    steps: result.executedSteps ?? [],
    ...(ok ? {} : { error: result.stackTrace }),
  };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  try {
    answer(run(JSON.parse(line)));
  } catch (e) {
    answer({ status: 'Error', outputs: {}, steps: [], error: String(e && e.stack || e) });
  }
});
