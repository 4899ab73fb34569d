/** Regenerates scp/dormant-tags-scp.json from lib/scp.ts (`npm run scp`). */
import * as fs from 'fs';
import * as path from 'path';
import { renderScp } from '../lib/scp';

const out = path.join(__dirname, '..', 'scp', 'dormant-tags-scp.json');
fs.writeFileSync(out, renderScp());
console.log(`wrote ${out}`);
