// The public surface of @tspaxos/paxos is a contract (issue 20): its API reports (api/*.api.md,
// api-extractor) are checked in, and this fails when the built declarations no longer match
// them. After a deliberate change: `npm run build && npm run api:update`, and review the diff.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script (the npm script runs it too); no declarations
import { apiReports, REPORTED_ENTRIES } from '../api-report.mjs';

type Changed = { name: string; report: string }[];
const api = fileURLToPath(new URL('../api/', import.meta.url));
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspaxos-api-test-'));
afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

describe('API reports', () => {
  it('every reported entry has its report checked in', () => {
    for (const name of Object.keys(REPORTED_ENTRIES as Record<string, string>))
      expect(fs.existsSync(path.join(api, `${name}.api.md`)), name).toBe(true);
  });

  it('the built surface matches the checked-in reports', { timeout: 120_000 }, () => {
    const changed = (apiReports as () => Changed)();
    expect(
      changed.map((c) => c.name),
      `the public surface changed; if meant: npm run api:update\n${changed.map((c) => c.report).join('\n')}`,
    ).toEqual([]);
  });

  it('and it sees a change: a report missing one export differs', { timeout: 120_000 }, () => {
    for (const f of fs.readdirSync(api)) fs.copyFileSync(path.join(api, f), path.join(temp, f));
    const report = path.join(temp, 'paxos.api.md');
    const text = fs.readFileSync(report, 'utf8');
    const planted = text.replace(/\n\/\/ @public\nexport interface WaitOptions \{[^}]*\}\n/, '\n');
    expect(planted).not.toBe(text);
    fs.writeFileSync(report, planted);
    const changed = (apiReports as (o: { reportFolder: string }) => Changed)({
      reportFolder: temp,
    });
    expect(changed.map((c) => c.name)).toEqual(['paxos']);
    expect(changed[0]!.report).toMatch(/export interface WaitOptions/);
  });
});
