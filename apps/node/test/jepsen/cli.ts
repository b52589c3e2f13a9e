// `npm run jepsen -- --seconds N [--seed S] [--clients C] [--keys K] [--history FILE] [--keep-data]
// [--lease-reads linearizable|own-writes]`:
// one fault run (test/jepsen/run.ts), its report on stdout; exit code 1 when a check failed.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_CLIENTS, DEFAULT_KEYS, formatReport, runJepsen } from './run';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    clients: { type: 'string', default: String(DEFAULT_CLIENTS) },
    keys: { type: 'string', default: String(DEFAULT_KEYS) },
    history: { type: 'string' },
    'keep-data': { type: 'boolean', default: false },
    // 'linearizable' (default) checks lease reads against every node's writes (issue 18's
    // promise); 'own-writes' only against the serving node's own (the promise before it).
    'lease-reads': { type: 'string', default: 'linearizable' },
  },
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`jepsen: --${name} must be a positive integer, got '${text}'\n`);
    process.exit(2);
  }
  return n;
}

const leaseReads = values['lease-reads'];
if (leaseReads !== 'own-writes' && leaseReads !== 'linearizable') {
  process.stderr.write(
    `jepsen: --lease-reads must be own-writes or linearizable, got '${leaseReads}'\n`,
  );
  process.exit(2);
}

const report = await runJepsen({
  leaseReads,
  seconds: positive('seconds', values.seconds),
  seed: values.seed === undefined ? Date.now() % 1_000_000_007 : positive('seed', values.seed),
  clients: positive('clients', values.clients),
  keys: positive('keys', values.keys),
  keepData: values['keep-data'],
  log: (line) => process.stdout.write(`${line}\n`),
});
if (values.history !== undefined)
  fs.writeFileSync(
    values.history,
    JSON.stringify({ faults: report.faultLog, history: report.history }, null, 1),
  );
process.stdout.write(`${formatReport(report)}\n`);
process.exit(report.problems.length === 0 ? 0 : 1);
