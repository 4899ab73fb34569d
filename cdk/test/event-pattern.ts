/**
 * A small EventBridge event-pattern matcher, faithful to the documented semantics for the
 * operators this app uses (and a few more), so the tests can check deployed patterns against
 * sample events offline:
 *
 * - The event is flattened to leaf paths (`detail.findings.Compliance.Status`). Arrays are
 *   transparent: every element contributes its leaves to the same path, so (as in EventBridge)
 *   conditions on different fields of an array of objects may be satisfied by different elements.
 * - A pattern leaf is an array of matchers, OR-ed; a path matches if any of its leaf values
 *   matches any matcher. Fields of a pattern object are AND-ed.
 * - Matchers: literal string/number/boolean/null, `prefix` and `suffix` (either with a string or
 *   with `{equals-ignore-case}`), `equals-ignore-case`,
 *   `anything-but` (literal, list, or `{prefix}`/`{suffix}`), `exists`, `numeric`, `wildcard`.
 * - `$or: [p1, p2, ...]` at any level: one of the sub-patterns (combined with the sibling fields).
 * - Matching is on leaves only: `exists` and literals never match an object or array node.
 *
 * Anything else throws, so a pattern using an unsupported operator cannot pass silently.
 */

export type Leaf = string | number | boolean | null;

export function flatten(value: unknown, prefix = '', out: Map<string, Leaf[]> = new Map()): Map<string, Leaf[]> {
  if (Array.isArray(value)) {
    for (const v of value) flatten(v, prefix, out);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
  } else if (value !== undefined) {
    const list = out.get(prefix) ?? [];
    list.push(value as Leaf);
    out.set(prefix, list);
  }
  return out;
}

interface Condition {
  readonly path: string;
  readonly matchers: unknown[];
}
type Conjunction = Condition[];

/** The pattern as a disjunction of conjunctions of leaf conditions. */
export function compile(pattern: unknown, prefix = ''): Conjunction[] {
  if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) {
    throw new Error(`pattern at '${prefix || '<root>'}' must be an object`);
  }
  let alternatives: Conjunction[] = [[]];
  for (const [key, value] of Object.entries(pattern)) {
    let branch: Conjunction[];
    if (key === '$or') {
      if (!Array.isArray(value) || value.length < 2) throw new Error(`$or at '${prefix}' needs an array of 2+ patterns`);
      branch = value.flatMap((sub) => compile(sub, prefix));
    } else {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      if (Array.isArray(value)) {
        if (value.length === 0) throw new Error(`empty matcher array at '${path}'`);
        branch = [[{ path, matchers: value }]];
      } else {
        branch = compile(value, path);
      }
    }
    alternatives = alternatives.flatMap((a) => branch.map((b) => [...a, ...b]));
  }
  return alternatives;
}

function isLiteral(m: unknown): m is Leaf {
  return m === null || ['string', 'number', 'boolean'].includes(typeof m);
}

function literalEquals(m: Leaf, v: Leaf): boolean {
  if (typeof m === 'number' && typeof v === 'number') return m === v;
  return m === v;
}

function wildcardToRegExp(w: string): RegExp {
  const escaped = w.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, 's');
}

function numericMatches(spec: unknown[], v: Leaf): boolean {
  if (typeof v !== 'number') return false;
  for (let i = 0; i < spec.length; i += 2) {
    const op = spec[i];
    const n = spec[i + 1] as number;
    const ok =
      op === '=' ? v === n : op === '<' ? v < n : op === '<=' ? v <= n : op === '>' ? v > n : op === '>=' ? v >= n : undefined;
    if (ok === undefined) throw new Error(`unsupported numeric operator ${String(op)}`);
    if (!ok) return false;
  }
  return true;
}

function excluded(spec: unknown, v: Leaf): boolean {
  if (isLiteral(spec)) return literalEquals(spec, v);
  if (Array.isArray(spec)) return spec.some((s) => excluded(s, v));
  if (spec !== null && typeof spec === 'object') {
    const [[op, arg]] = Object.entries(spec);
    if (op === 'prefix') return typeof v === 'string' && v.startsWith(arg as string);
    if (op === 'suffix') return typeof v === 'string' && v.endsWith(arg as string);
    if (op === 'equals-ignore-case') return typeof v === 'string' && v.toLowerCase() === (arg as string).toLowerCase();
    if (op === 'wildcard') return typeof v === 'string' && wildcardToRegExp(arg as string).test(v);
  }
  throw new Error(`unsupported anything-but operand ${JSON.stringify(spec)}`);
}

/** `prefix`/`suffix` take a string, or `{ "equals-ignore-case": string }` to ignore case. */
function affix(arg: unknown, v: Leaf, test: (value: string, affix: string) => boolean): boolean {
  if (typeof v !== 'string') return false;
  if (typeof arg === 'string') return test(v, arg);
  if (arg !== null && typeof arg === 'object' && Object.keys(arg).join() === 'equals-ignore-case') {
    return test(v.toLowerCase(), String((arg as Record<string, unknown>)['equals-ignore-case']).toLowerCase());
  }
  throw new Error(`unsupported prefix/suffix operand ${JSON.stringify(arg)}`);
}
const startsWith = (v: string, a: string) => v.startsWith(a);
const endsWith = (v: string, a: string) => v.endsWith(a);

function matcherMatches(m: unknown, values: Leaf[] | undefined): boolean {
  const present = values !== undefined && values.length > 0;
  if (isLiteral(m)) return present && values.some((v) => literalEquals(m, v));
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error(`bad matcher ${JSON.stringify(m)}`);
  const entries = Object.entries(m);
  if (entries.length !== 1) throw new Error(`a matcher object has exactly one operator: ${JSON.stringify(m)}`);
  const [op, arg] = entries[0];
  switch (op) {
    case 'exists':
      return arg === present;
    case 'prefix':
      return present && values.some((v) => affix(arg, v, startsWith));
    case 'suffix':
      return present && values.some((v) => affix(arg, v, endsWith));
    case 'equals-ignore-case':
      return present && values.some((v) => typeof v === 'string' && v.toLowerCase() === (arg as string).toLowerCase());
    case 'wildcard':
      return present && values.some((v) => typeof v === 'string' && wildcardToRegExp(arg as string).test(v));
    case 'numeric':
      return present && values.some((v) => numericMatches(arg as unknown[], v));
    case 'anything-but':
      return present && values.some((v) => !excluded(arg, v));
    default:
      throw new Error(`unsupported operator '${op}'`);
  }
}

export function matches(pattern: unknown, event: unknown): boolean {
  const leaves = flatten(event);
  return compile(pattern).some((conj) =>
    conj.every((c) => c.matchers.some((m) => matcherMatches(m, leaves.get(c.path)))),
  );
}
