// Merges several bench-results JSON files of one suite (separate runs) into a Markdown table of
// medians, for BENCHMARKS.md:  node scripts/bench-summary.mjs run1.json run2.json run3.json
import { readFileSync } from 'node:fs';
import { median, fmt } from './bench-harness.mjs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: bench-summary.mjs <result.json>...');
  process.exit(2);
}
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
const byName = new Map();
for (const run of runs) {
  for (const row of run.rows) {
    if (!byName.has(row.name))
      byName.set(row.name, { unit: row.unit, baseline: row.baseline, values: [], ratios: [] });
    const entry = byName.get(row.name);
    entry.values.push(row.value);
    if (row.ratio !== undefined) entry.ratios.push(row.ratio);
  }
}
const m = runs[0].machine;
console.log(
  `Suite \`${runs[0].suite}\`: median of ${runs.length} runs × ${runs[0].runs} repetitions; ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.date.slice(0, 10)}, at commit \`${m.commit ?? 'unknown'}\`.\n`,
);
console.log('| what | median | unit | ratio | baseline |');
console.log('|---|---:|---|---:|---|');
for (const [name, e] of byName) {
  const ratio = e.ratios.length ? `${median(e.ratios).toFixed(2)}×` : '';
  console.log(
    `| ${name} | ${fmt(median(e.values))} | ${e.unit} | ${ratio} | ${e.baseline ?? ''} |`,
  );
}
