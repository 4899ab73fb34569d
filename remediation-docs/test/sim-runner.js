// Runs Automation documents with @cdklabs/cdk-ssm-documents' simulator, for test/simulate.py.
//
// Protocol: one JSON request per stdin line, {"document": PATH, "inputs": {...}}; one answer
// per request on stdout, a line "@@dormant-sim@@ " + JSON {"status": "Success"|"FAILED"|...,
// "outputs": {...}, "steps": [...], "error": "..."}. Other stdout lines are the simulator's
// chatter (its worker threads log to stdout; the main thread's console.log is sent to stderr).
//
// aws:executeAwsApi steps call AWS for real through the AWS SDK for JavaScript v3, which honours
// AWS_ENDPOINT_URL (moto in the tests). aws:executeScript steps run the document's Python handler
// in a child process of the interpreter named by DORMANT_SIM_PYTHON (the project venv, which has
// boto3), called as handler(events, context) with events = the resolved InputPayload.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const answer = (obj) => process.stdout.write(`@@dormant-sim@@ ${JSON.stringify(obj)}\n`);
console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
console.info = console.log;

const { Stack } = require('aws-cdk-lib');
const {
  AssertAwsResourceStep, AwsApiStep, AwsService, DataTypeEnum, ExecuteScriptStep, Input, ResponseCode, Simulation,
  StringDocument, StringListVariable, StringVariable,
} = require('@cdklabs/cdk-ssm-documents');

// aws:executeScript runs in a worker thread through the simulator's copy of python-shell, which
// starts `python3` from PATH: put the chosen interpreter's directory first.
const python = process.env.DORMANT_SIM_PYTHON;
if (!python || !fs.existsSync(path.join(path.dirname(python), 'python3'))) {
  throw new Error('set DORMANT_SIM_PYTHON to a python (with boto3) whose directory has python3');
}
process.env.PATH = `${path.dirname(python)}${path.delimiter}${process.env.PATH}`;

// Simulator bug (0.0.74): an aws:executeAwsApi step that declares no `outputs` crashes in
// getSelectedResponse (undefined.forEach). In SSM, outputs are optional: treat absent as none.
const declaredOutputs = AwsApiStep.prototype.listUserOutputs;
AwsApiStep.prototype.listUserOutputs = function listUserOutputs() {
  return declaredOutputs.call(this) ?? [];
};

// Simulator bug (0.0.74): allowedPattern on a StringList parameter calls value.match() on the
// array and fails. SSM applies the pattern to each item: do that.
const validateInput = Input.prototype.validate;
Input.prototype.validate = function validate(value) {
  if (!Array.isArray(value) || !this.allowedPattern) return validateInput.call(this, value);
  for (const item of value) {
    if (typeof item !== 'string' || !item.match(this.allowedPattern)) {
      throw new Error(`Value ${JSON.stringify(item)} does not match regex ${this.allowedPattern}`);
    }
  }
  const pattern = this.allowedPattern;
  this.allowedPattern = undefined;
  try {
    return validateInput.call(this, value);
  } finally {
    this.allowedPattern = pattern;
  }
};

function run({ document, inputs }) {
  // A fresh Stack each time: steps are constructs named after the step, unique per scope.
  const doc = StringDocument.fromFile(new Stack(), 'Document', document);
  // Simulator gap (0.0.74): every '{{ X }}' in an aws:executeScript InputPayload becomes a
  // StringVariable, which refuses a list. SSM passes a StringList parameter as a list: retype it.
  const stringLists = new Set(doc.docInputs.filter((i) => i.inputType === DataTypeEnum.STRING_LIST)
    .map((i) => i.name));
  for (const step of doc.builder.steps) {
    if (!(step instanceof ExecuteScriptStep)) continue;
    for (const [key, variable] of Object.entries(step.inputs)) {
      if (variable instanceof StringVariable && stringLists.has(variable.reference)) {
        step.inputs[key] = new StringListVariable(variable.reference);
      }
    }
  }
  // Simulator bug (0.0.74): a document's aws:assertAwsResourceProperty step gets its Service as
  // the bare string, where the API call needs an AwsService (as aws:executeAwsApi gets): the
  // call fails on service.javaScriptName. Build it the way the simulator does for executeAwsApi.
  for (const step of doc.builder.steps) {
    if (step instanceof AssertAwsResourceStep && typeof step.service === 'string') {
      const camel = step.service.replace(/-([a-z])/g, (g) => g[1].toUpperCase());
      step.service = new AwsService(step.service, camel.charAt(0).toUpperCase() + camel.slice(1));
    }
  }
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
