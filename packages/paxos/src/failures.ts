// How a group tells its failures apart: the codes that end a recovery proposal as expected, a
// coded failure of a checkpoint install (a bug is rethrown instead), and any thrown value as a
// code and a message for status().errors.
/** Codes a recovery no-op proposal may end with that are expected outcomes, not failures. */
export const RECOVERY_EXPECTED_CODES = new Set([
  'E_TIMEOUT',
  'E_STOPPED',
  'E_NOT_MEMBER',
  'E_QUEUE_FULL',
  'E_CHECKSUM_MISMATCH',
  'E_STORAGE',
  'E_EXECUTE_FAILED',
  // A checkpoint was installed meanwhile: the group restarted from it (found by the simulator).
  'E_CHECKPOINT_INSTALLED',
]);

export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : error.name, message: error.message };
  }
  return { code: 'NON_ERROR_THROWN', message: String(error) };
}

/** A coded failure of the checkpoint install (as opposed to a bug, which is rethrown). */
export function isInstallError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'E_LOAD_FAILED' || code === 'E_CORRUPT_MANIFEST';
}
