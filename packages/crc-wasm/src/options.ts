// One way to check an options object, shared by every package (each throws its own error class
// with code E_BAD_ARGUMENT): every field named with its allowed range, so `sendRateInstancesPerSec:
// 0` or `NaN` fails at construction instead of re-arming a 0 ms timer forever.

/** The values a numeric option may take: an integer (default) or any finite number in [min, max]. */
export interface OptionRange {
  min: number;
  max?: number;
  /** Whole numbers only (default true). */
  integer?: boolean;
}

/** `an integer in 1 … 9007199254740991`, the words every option error uses. */
export function describeRange(range: OptionRange): string {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  return `${range.integer === false ? 'a number' : 'an integer'} in ${range.min} … ${max}`;
}

/** Why `value` is not in `range`, or undefined when it is. */
export function rangeProblem(value: unknown, range: OptionRange): string | undefined {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (range.integer === false || Number.isSafeInteger(value)) &&
    value >= range.min &&
    value <= max;
  return ok ? undefined : `must be ${describeRange(range)}, got ${formatValue(value)}`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null)
    return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

/**
 * Checks every field of `input` that `ranges` names, and that `input` names no other field.
 * Returns the first problem as a sentence naming `owner`, the field and its range, or undefined.
 */
export function optionsProblem<K extends string>(
  owner: string,
  input: object,
  ranges: Readonly<Record<K, OptionRange>>,
): string | undefined {
  if (typeof input !== 'object' || input === null) return `${owner} options must be an object`;
  for (const [key, value] of Object.entries(input)) {
    if (!Object.hasOwn(ranges, key)) {
      return `unknown ${owner} option ${key} (known: ${Object.keys(ranges).join(', ')})`;
    }
    if (value === undefined) continue;
    const problem = rangeProblem(value, ranges[key as K]);
    if (problem !== undefined) return `${owner} option ${key} ${problem}`;
  }
  return undefined;
}
