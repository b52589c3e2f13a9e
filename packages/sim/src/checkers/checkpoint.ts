// The checkpoint invariant: a loaded checkpoint (a node's own at start, or one installed) equals
// what the log says: every value in it was proposed and chosen at that instance, and every
// instance up to the checkpoint instance id that any node executed is in it, with the same values.
export interface CheckpointLoadedEvent {
  kind: 'loaded';
  node: number;
  group: number;
  /** The checkpoint instance id. */
  cp: number;
  /** What the recorder's checkpoint holds: [instance id, values executed there]. */
  entries: ReadonlyArray<readonly [number, readonly string[]]>;
  how: 'disk' | 'install';
}

export class CheckpointChecker {
  /**
   * `chosen`: group → instance → values chosen there (AgreementChecker.chosen; a checkpoint's
   * values extend it); `note` records a violation without throwing (recorder callbacks).
   */
  constructor(
    private readonly chosen: ReadonlyArray<Map<number, string[]>>,
    private readonly proposed: ReadonlySet<string>,
    private readonly note: (invariant: 'checkpoint' | 'validity', message: string) => void,
  ) {}

  /** The node's executed values of the group from now on (undefined: the checkpoint is wrong). */
  observe(e: CheckpointLoadedEvent): Map<number, string[]> | undefined {
    const { node, group, cp, how } = e;
    const chosen = this.chosen[group]!;
    const executed = new Map<number, string[]>();
    const bad = (message: string): undefined => {
      this.note('checkpoint', `n${node} group ${group} checkpoint ${cp} (${how}): ${message}`);
      return undefined;
    };
    for (const [i, values] of e.entries) {
      if (!Number.isSafeInteger(i) || i > cp || !Array.isArray(values))
        return bad(`entry ${JSON.stringify([i, values])} is not an instance up to the checkpoint`);
      executed.set(i, [...values]);
      for (const v of values)
        if (!this.proposed.has(v))
          this.note(
            'validity',
            `n${node} group ${group} got "${String(v)}" at instance ${i} through a checkpoint, which nobody proposed`,
          );
      const global = chosen.get(i) ?? [];
      for (let k = 0; k < values.length; k++) {
        if (k >= global.length) global.push(values[k]!);
        else if (global[k] !== values[k])
          return bad(
            `instance ${i} item ${k} is "${values[k]}" but "${global[k]}" was chosen there`,
          );
      }
      chosen.set(i, global);
    }
    for (const [i, global] of chosen) {
      if (i > cp) continue;
      const mine = executed.get(i) ?? [];
      if (mine.length !== global.length)
        return bad(
          `instance ${i} holds ${JSON.stringify(mine)} but ${JSON.stringify(global)} was chosen there`,
        );
    }
    return executed;
  }

  finish(): void {}
}
