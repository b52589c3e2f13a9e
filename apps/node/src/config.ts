// Where a flag's value comes from, first found wins: the command line, the environment
// (TSPAXOS_<FLAG>, e.g. TSPAXOS_CLUSTER_ID for --cluster-id), the --config file, the default.
// commander reads the first two (Option.env); the file is applied here, after parsing, to the
// options still unset or at their default, through the same parsers as the flags.
import * as fs from 'node:fs';
import { type Command, CommanderError, type Option } from 'commander';
import { StartError } from './start-error';

/** TSPAXOS_ + the long flag in upper snake case (`--no-master-election`: TSPAXOS_NO_MASTER_ELECTION). */
export function envName(option: Option): string {
  return `TSPAXOS_${option.long!.slice(2).replace(/-/g, '_').toUpperCase()}`;
}

/**
 * Gives every option added to `command` from now on its environment variable (shown in --help).
 * commander wires an option's environment variable when the option is added, so this must run
 * before the options are.
 */
export function withEnvVars(command: Command): Command {
  const add = command.addOption.bind(command);
  command.addOption = (option: Option) => {
    if (option.long !== undefined && option.envVar === undefined) option.env(envName(option));
    return add(option);
  };
  return command;
}

/** A bad config file: one line, exit code 2. */
function configError(file: string, message: string): StartError {
  return new StartError(`--config ${file}: ${message}`, 2);
}

/** A `.yaml` or `.yml` file is YAML; any other name is JSON (as before YAML was read). */
export function isYamlFile(file: string): boolean {
  return /\.ya?ml$/i.test(file);
}

/**
 * The config file: a JSON or YAML object whose keys are flag names without the dashes. YAML is
 * read with the `yaml` package (YAML 1.2 core schema: `yes` is a string, not true), strictly:
 * a duplicate key, an unknown tag or a second document is an error, not a guess.
 */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw configError(file, `cannot read it: ${(error as Error).message}`);
  }
  const format = isYamlFile(file) ? 'YAML' : 'JSON';
  let value: unknown;
  if (format === 'YAML') {
    // Loaded only for a YAML file: ~60 ms of every start otherwise (issue 22's restart timeline).
    const { parseDocument } = await import('yaml');
    const document = parseDocument(text);
    const problem = document.errors[0] ?? document.warnings[0];
    // The yaml package's message goes on with the offending lines and a caret: keep its first
    // line (what and where) so that a start error stays one line.
    if (problem !== undefined)
      throw configError(file, `not YAML: ${problem.message.split('\n')[0]}`);
    value = document.toJS();
  } else {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw configError(file, `not JSON: ${(error as Error).message}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw configError(file, `must be a ${format} object (a map) of flag names to values`);
  return value as Record<string, unknown>;
}

/**
 * Applies the file's values to the options that neither a flag nor the environment set. Keys are
 * the long flag names without the leading dashes (`"cluster-id"`, `"master-election": false` for
 * `--no-master-election`); values are strings or numbers, booleans for switches, arrays for
 * repeatable flags (`"cors-origin"`). Unknown keys and bad values are errors.
 */
export function applyConfig(command: Command, file: string, values: Record<string, unknown>): void {
  const byKey = new Map<string, Option>();
  for (const option of command.options) {
    if (option.long === undefined || option.long === '--config') continue;
    const key = option.long.slice(2);
    byKey.set(option.negate ? key.replace(/^no-/, '') : key, option);
  }
  for (const [key, value] of Object.entries(values)) {
    const option = byKey.get(key);
    if (option === undefined)
      throw configError(file, `unknown key '${key}' (known: ${[...byKey.keys()].join(', ')})`);
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (source !== undefined && source !== 'default') continue; // a flag or the environment won
    if (option.negate || (!option.required && !option.optional)) {
      if (typeof value !== 'boolean') throw configError(file, `${key} must be true or false`);
      command.setOptionValueWithSource(name, value, 'config');
      continue;
    }
    const items = Array.isArray(value) ? value : [value];
    if (Array.isArray(value) && !option.variadic && !isRepeatable(option))
      throw configError(file, `${key} takes one value, not a list`);
    let parsed: unknown = isRepeatable(option) ? undefined : command.getOptionValue(name);
    for (const item of items) {
      if (typeof item !== 'string' && typeof item !== 'number')
        throw configError(file, `${key} must be a string or a number`);
      try {
        parsed = option.parseArg ? option.parseArg(String(item), parsed) : String(item);
      } catch (error) {
        const message = error instanceof CommanderError ? error.message : (error as Error).message;
        throw configError(file, `${key}: ${message}`);
      }
    }
    command.setOptionValueWithSource(name, parsed, 'config');
  }
}

const REPEATABLE = new WeakSet<Option>();

/** Marks an option whose parser collects repeated flags into a list (`--cors-origin`). */
export function repeatable(option: Option): Option {
  REPEATABLE.add(option);
  return option;
}

function isRepeatable(option: Option): boolean {
  return REPEATABLE.has(option);
}

/** Fails like a missing required flag when none of flag, environment or file gave `long`. */
export function missingRequired(command: Command, longs: string[]): string | undefined {
  for (const long of longs) {
    const option = command.options.find((o) => o.long === long)!;
    if (command.getOptionValue(option.attributeName()) === undefined)
      return `required option '${option.flags}' not specified (flag, ${envName(option)} or --config)`;
  }
  return undefined;
}
