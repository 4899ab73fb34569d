/**
 * Regenerates scp/dormant-tags-scp.json from lib/scp.ts (`npm run scp`), or, given options, writes
 * the SCP for your own admins and role names to standard output (or --out FILE):
 *
 *   npm run scp -- --admin 'arn:*:iam::*:role/secops' --role answers=acme-dormant-answers
 *
 * --admin ARN (repeatable) replaces the sample's admins; --role KIND=NAME (KIND: controller,
 * member, automation, answers) names a role the stacks were given another name.
 */
import * as fs from 'fs';
import * as path from 'path';
import { buildScp, DEFAULT_SCP_OPTIONS, renderScp, ScpOptions, ScpRoleNames, SCP_SIZE_LIMIT } from '../lib/scp';

function fail(why: string): never {
  console.error(`write-scp: ${why}`);
  process.exit(2);
}

const args = process.argv.slice(2);
const admins: string[] = [];
const roleNames: ScpRoleNames = { ...DEFAULT_SCP_OPTIONS.roleNames };
let out: string | undefined;
for (let i = 0; i < args.length; i++) {
  const [flag, value] = [args[i], args[i + 1]];
  if (value === undefined) fail(`${flag} needs a value`);
  i++;
  if (flag === '--admin') {
    if (!value.startsWith('arn:')) fail(`--admin ${value}: not an ARN pattern`);
    admins.push(value);
  } else if (flag === '--role') {
    const [kind, name] = value.split('=', 2);
    if (!(kind in roleNames)) fail(`--role ${value}: KIND is one of ${Object.keys(roleNames).join(', ')}`);
    if (!name || !/^[\w+=,.@-]{1,64}$/.test(name)) fail(`--role ${value}: '${name ?? ''}' is not an IAM role name`);
    roleNames[kind as keyof ScpRoleNames] = name;
  } else if (flag === '--out') {
    out = value;
  } else {
    fail(`unknown option ${flag} (see the comment at the top of scripts/write-scp.ts)`);
  }
}

const opts: ScpOptions = {
  ...DEFAULT_SCP_OPTIONS,
  adminPrincipalArns: admins.length > 0 ? admins : DEFAULT_SCP_OPTIONS.adminPrincipalArns,
  roleNames,
};
// Indented when it fits; else without whitespace (AWS counts every character it is given).
const pretty = renderScp(opts);
const text = pretty.length <= SCP_SIZE_LIMIT ? pretty : JSON.stringify(buildScp(opts)) + '\n';
if (text.length > SCP_SIZE_LIMIT) {
  fail(`the SCP is ${text.length} characters without whitespace, over AWS's limit of ${SCP_SIZE_LIMIT}: fewer or shorter --admin patterns or role names`);
}
if (args.length === 0) {
  const committed = path.join(__dirname, '..', 'scp', 'dormant-tags-scp.json');
  fs.writeFileSync(committed, text);
  console.log(`wrote ${committed}`);
} else if (out) {
  fs.writeFileSync(out, text);
  console.log(`wrote ${out}`);
} else {
  process.stdout.write(text);
}
