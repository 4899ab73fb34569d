// Validates every Automation document against the SSM document JSON schema shipped by the npm
// package aws-ssm-document-language-service (dist/schema.json), with ajv.
//
// Usage: node test/validate-schema.js DOC.yaml...   (exit 1 if any document is invalid)
//        node test/validate-schema.js --self-test DOC.yaml   (broken copies must be rejected)
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const Ajv = require('ajv');
const YAML = require('yaml');

const schema = JSON.parse(fs.readFileSync(
  require.resolve('aws-ssm-document-language-service/dist/schema.json'), 'utf8'));

// The schema (package version 1.0.0) predates the current aws:executeScript runtimes: its Runtime
// enum stops at python3.7, which SSM no longer accepts. Add the Python runtimes SSM runs today;
// nothing else in the schema is changed.
const CURRENT_PYTHON_RUNTIMES = ['python3.8', 'python3.9', 'python3.10', 'python3.11'];
let patched = 0;
for (const rule of schema.properties.mainSteps.items.allOf) {
  if (rule.if?.properties?.action?.const !== 'aws:executeScript') continue;
  const runtime = rule.then.properties.inputs.properties.Runtime;
  runtime.oneOf[0].enum.push(...CURRENT_PYTHON_RUNTIMES);
  patched += 1;
}
if (patched !== 1) throw new Error(`schema layout changed: found ${patched} aws:executeScript rules`);

// unicodeRegExp: false because the schema's patterns are written for non-unicode RegExp.
const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
const validate = ajv.compile(schema);

function parse(text) {
  const doc = YAML.parseDocument(text, { version: '1.2' });
  if (doc.errors.length) throw new Error(doc.errors.map(String).join('; '));
  return doc.toJS();
}

function errorsOf(text) {
  return validate(parse(text)) ? [] : validate.errors.map(
    (e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
}

// Deliberately broken copies of a valid document; each must be rejected.
const BREAKAGES = [
  ['schemaVersion 0.2', (t) => t.replace("schemaVersion: '0.3'", "schemaVersion: '0.2'")],
  ['unknown action', (t) => t.replace(/action: aws:(executeScript|executeAwsApi)/, 'action: aws:executeAPI')],
  ['unknown step property', (t) => t.replace(/^( {4})action:/m, '$1nextstep: Nowhere\n$1action:')],
  ['unknown top-level property', (t) => `${t}\nsteps: []\n`],
  ['parameter type', (t) => t.replace(/type: String\n/, 'type: Text\n')],
  ['output type', (t) => t.replace(/Type: (String|Boolean|StringList)\n/, 'Type: Str\n')],
  ['no mainSteps', (t) => t.replace(/^mainSteps:[\s\S]*$/m, '')],
  ['step without inputs', (t) => t.replace(/^( {4})inputs:\n/m, '$1input:\n')],
  ['python2 runtime', (t) => t.replace(/Runtime: python3\.11/, 'Runtime: python2.7')],
];

function main(argv) {
  const selfTest = argv[0] === '--self-test';
  const files = selfTest ? argv.slice(1) : argv;
  if (!files.length) throw new Error('no documents given');
  let failures = 0;
  let checks = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const name = path.basename(file);
    if (!selfTest) {
      const errors = errorsOf(text);
      console.log(`${errors.length ? 'FAIL' : 'ok  '} schema ${name}`);
      for (const e of errors) console.log(`       ${e}`);
      failures += errors.length ? 1 : 0;
      checks += 1;
      continue;
    }
    for (const [label, breakIt] of BREAKAGES) {
      const broken = breakIt(text);
      if (broken === text) continue; // this breakage does not apply to this document
      let errors;
      try {
        errors = errorsOf(broken);
      } catch (e) {
        errors = [`unparsable: ${e.message}`];
      }
      const ok = errors.length > 0;
      console.log(`${ok ? 'ok  ' : 'FAIL'} schema rejects ${name} with ${label}${ok ? '' : ' (accepted!)'}`);
      failures += ok ? 0 : 1;
      checks += 1;
    }
  }
  console.log(`${selfTest ? 'schema-self-test' : 'schema'}: ${checks - failures} passed, ${failures} failed`);
  return failures;
}

try {
  process.exitCode = main(process.argv.slice(2)) ? 1 : 0;
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 2;
}
