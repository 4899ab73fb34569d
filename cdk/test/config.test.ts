import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildConfig, CONFIG_KEYS, DEFAULT_CONFIG, STACK_DEFAULTS } from '../lib/config';

const REPO_ROOT = path.join(__dirname, '..', '..');

/** Keys of a TOML file by section: `[section]` headers and `key =` lines (enough for the example file). */
function tomlKeys(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = { '': [] };
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^\[([a-z_]+)\]/.exec(line);
    if (header) {
      section = header[1];
      out[''].push(section);
      out[section] = [];
      continue;
    }
    const key = /^([a-z_]+)\s*=/.exec(line);
    if (key) out[section].push(key[1]);
  }
  return out;
}

const example = path.join(REPO_ROOT, 'dormant.example.toml');

(fs.existsSync(example) ? test : test.skip)('the configuration mirror has exactly the keys of dormant.example.toml', () => {
  const keys = tomlKeys(fs.readFileSync(example, 'utf8'));
  const sortAll = (r: Record<string, string[]>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, [...v].sort()]).sort());
  expect(sortAll(CONFIG_KEYS)).toEqual(sortAll(keys));
});

// With DORMANT_BIN=path/to/dormant (the root test script sets it), the defaults are the binary's
// own: `dormant config --defaults --output json` prints what the Rust parser fills in.
const bin = process.env.DORMANT_BIN;
(bin ? test : test.skip)("the defaults are the Rust binary's (dormant config --defaults)", () => {
  const rust = JSON.parse(execFileSync(bin!, ['config', '--defaults', '--output', 'json'], { encoding: 'utf8' })) as Record<
    string,
    unknown
  >;
  // An optional key is null on the Rust side and left out here (min_age_days).
  const present = (v: unknown): unknown =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== null).map(([k, x]) => [k, present(x)]))
      : v;
  expect(DEFAULT_CONFIG).toEqual(present(rust));
});

test('without overrides the stack passes on the defaults', () => {
  const c = buildConfig(undefined, { table: 't', event_bus: 'b', accounts: [], automationRoleArn: '' });
  // The one departure: a deployment reports to Security Hub; the CLI's default is off.
  expect(DEFAULT_CONFIG.security_hub).toEqual({ enabled: false, region: '' });
  expect(STACK_DEFAULTS).toEqual({ security_hub: { enabled: true } });
  expect(c).toEqual({ ...DEFAULT_CONFIG, table: 't', event_bus: 'b', security_hub: { enabled: true, region: '' } });
  expect(Object.keys(c).sort()).toEqual([...CONFIG_KEYS['']].sort());
  for (const [section, keys] of Object.entries(CONFIG_KEYS)) {
    if (section === '') continue;
    // min_age_days is optional (defaults to threshold_days) and left out.
    for (const k of Object.keys((c as unknown as Record<string, Record<string, unknown>>)[section])) expect(keys).toContain(k);
  }
});

test('table, event_bus and accounts cannot be overridden', () => {
  const fixed = { table: 't', event_bus: 'b', accounts: [], automationRoleArn: '' };
  expect(() => buildConfig({ table: 'x' } as never, fixed)).toThrow(/table/);
  expect(() => buildConfig({ nonsense: 1 } as never, fixed)).toThrow(/nonsense/);
  expect(buildConfig({ breaker: { min_count: 9 } }, fixed).breaker).toEqual({ ...DEFAULT_CONFIG.breaker, min_count: 9 });
});

test('Security Hub is on in a deployment and can be turned off or pointed at a region', () => {
  const fixed = { table: 't', event_bus: 'b', accounts: [], automationRoleArn: '' };
  expect(buildConfig({ security_hub: { enabled: false } }, fixed).security_hub).toEqual({ enabled: false, region: '' });
  expect(buildConfig({ security_hub: { region: 'eu-west-1' } }, fixed).security_hub).toEqual({ enabled: true, region: 'eu-west-1' });
  expect(() => buildConfig({ security_hub: { enable: true } } as never, fixed)).toThrow(/security_hub.enable/);
});
