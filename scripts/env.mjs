// The one parser of the numeric environment knobs of tests and benchmarks (SIM_SEEDS,
// CRASH_ROUNDS, CRASH_SEED, BENCH_RUNS, …). Each knob is declared in turbo.json (strict env
// mode drops undeclared variables). An unset or empty variable takes the default; anything that is
// not an integer in range is an error naming the variable, never a NaN that silently runs nothing.

/**
 * The integer value of environment variable `name` (decimal, or hex with 0x), or `fallback` when
 * it is unset or empty. Throws when it is not a safe integer within [min, max].
 */
export function envInteger(name, fallback, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in ${min} … ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
