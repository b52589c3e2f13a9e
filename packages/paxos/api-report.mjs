// The API report of each public entry of @tspaxos/paxos (api-extractor's `api/<entry>.api.md`,
// checked in): `node api-report.mjs --update` writes them from the built .d.ts files (run
// `npm run build` first); without --update it compares and fails on any difference, which is
// what test/api-report.test.ts does in `npm test`. /internal has no report: no promise is kept.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Entry (the report's name) → its built declaration file. */
export const REPORTED_ENTRIES = {
  paxos: 'dist/index.d.ts',
  'paxos-node': 'dist/node.d.ts',
  'paxos-testing': 'dist/testing.d.ts',
};

/**
 * Runs api-extractor on each entry. `update`: writes the reports into `reportFolder` (api/).
 * Otherwise: returns the entries whose surface differs from the report there, with the new text.
 */
export function apiReports({ update = false, reportFolder = path.join(here, 'api') } = {}) {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'tspaxos-api-'));
  const changed = [];
  try {
    for (const [name, dts] of Object.entries(REPORTED_ENTRIES)) {
      const config = ExtractorConfig.prepare({
        configObject: {
          projectFolder: here,
          mainEntryPointFilePath: path.join(here, dts),
          compiler: {
            overrideTsconfig: {
              compilerOptions: { strict: true, skipLibCheck: true, lib: ['es2022', 'dom'] },
              include: [path.join(here, dts)],
            },
          },
          apiReport: {
            enabled: true,
            reportFileName: `${name}.api.md`,
            reportFolder,
            reportTempFolder: temp,
          },
          newlineKind: 'lf',
          docModel: { enabled: false },
          dtsRollup: { enabled: false },
          tsdocMetadata: { enabled: false },
          messages: {
            compilerMessageReporting: { default: { logLevel: 'warning' } },
            extractorMessageReporting: {
              default: { logLevel: 'warning' },
              // Types reachable but not exported: their shapes are in the report all the same; the
              // note would name the hashed chunk file and line, which move with every build.
              'ae-forgotten-export': { logLevel: 'none', addToApiReportFile: false },
              'ae-missing-release-tag': { logLevel: 'none' },
              'ae-undocumented': { logLevel: 'none', addToApiReportFile: false },
            },
            tsdocMessageReporting: { default: { logLevel: 'none' } },
          },
        },
        configObjectFullPath: path.join(here, 'api-extractor.json'),
        packageJsonFullPath: path.join(here, 'package.json'),
      });
      const result = Extractor.invoke(config, {
        localBuild: update,
        showVerboseMessages: false,
        messageCallback: (m) => {
          // Its notice that our TypeScript is newer than its own is not a problem of the report.
          if (m.messageId === 'console-compiler-version-notice') m.logLevel = 'none';
        },
      });
      if (result.apiReportChanged && !update)
        changed.push({
          name,
          report: fs.readFileSync(path.join(temp, `${name}.api.md`), 'utf8'),
        });
      else if (!result.succeeded && !result.apiReportChanged)
        throw new Error(`api-extractor failed on ${dts}: ${result.errorCount} errors`);
    }
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
  return changed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const update = process.argv.includes('--update');
  const changed = apiReports({ update });
  for (const c of changed) console.error(`api/${c.name}.api.md is out of date`);
  if (changed.length > 0) {
    console.error('the public surface changed: review it, then run `npm run api:update`');
    process.exit(1);
  }
  console.log(update ? 'api reports written' : 'api reports match');
}
