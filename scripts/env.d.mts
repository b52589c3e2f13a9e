/** See env.mjs. */
export function envInteger(
  name: string,
  fallback: number,
  range?: { min?: number; max?: number },
): number;
