/**
 * Partitions (docs/design.md, 'Multi-account and scale'): the app names no ARN of the `aws`
 * partition literally; every ARN it builds takes the stack's partition (`AWS::Partition`), and
 * the sample SCP matches every partition.
 */
import * as fs from 'fs';
import * as path from 'path';
import { controller, member } from './helpers';

const LITERAL = /arn:aws:/;

describe('no literal aws partition', () => {
  test('in either synthesized template, default and with every option on', () => {
    const templates = [
      controller().template,
      controller({ sweepFanOut: true, memberAccounts: ['111122223333'], config: { organization: { enabled: true } } }).template,
      member().template,
    ];
    for (const t of templates) {
      const text = JSON.stringify(t.toJSON());
      expect(text).not.toMatch(LITERAL);
      // The ARNs it does build name the partition through the pseudo parameter.
      expect(text).toContain('"Ref":"AWS::Partition"');
    }
  });

  test('in the app sources and the sample SCP', () => {
    const lib = path.join(__dirname, '..', 'lib');
    for (const file of fs.readdirSync(lib).filter((f) => f.endsWith('.ts'))) {
      const code = fs
        .readFileSync(path.join(lib, file), 'utf8')
        .split('\n')
        .filter((line) => !line.trim().startsWith('//') && !line.trim().startsWith('*'))
        .join('\n');
      expect({ file, literal: LITERAL.test(code) }).toEqual({ file, literal: false });
    }
    const scp = fs.readFileSync(path.join(__dirname, '..', 'scp', 'dormant-tags-scp.json'), 'utf8');
    expect(scp).not.toMatch(LITERAL);
  });
});
