// Writes ../tests/fixtures/policies/ from the synthesized stacks (lib/policy-export.ts).
import { writePolicies } from '../lib/policy-export';

for (const f of writePolicies()) console.log(`tests/fixtures/policies/${f}`);
