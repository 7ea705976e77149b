/**
 * What every operator command does with its arguments: parse the flags, take exactly one file or list
 * argument, print the usage on `--help` or on a mistake, and read numeric flags within bounds.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandArgs<T extends Options> {
  values: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: T }>>['values'];
  /** The one positional argument. */
  target: string;
}

/**
 * Parses `argv` against `options` (a `help` flag prints `usage`). Returns the parsed arguments, or the exit code
 * when the command should stop: 0 after help, 2 after a mistake (unknown flag, not exactly one positional
 * argument, a `required` flag missing), with the usage on stderr.
 */
export function parseCommandArgs<T extends Options>(command: string, usage: string, argv: string[], options: T, required: (keyof T & string)[] = []): CommandArgs<T> | number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options });
  } catch (err) {
    process.stderr.write(`fast3d ${command}: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (parsed.positionals.length !== 1 || required.some((name) => values[name] === undefined)) {
    process.stderr.write(usage);
    return 2;
  }
  return { values: parsed.values, target: parsed.positionals[0] };
}

/** A numeric flag within [min, max]; throws naming the flag. */
export function numberFlag(text: string, name: string, min: number, max: number): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got "${text}"`);
  return v;
}

/** An integer flag within [min, max]; throws naming the flag. */
export function integerFlag(text: string, name: string, min: number, max: number): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return v;
}

/** Milliseconds to one decimal, for the commands' reports. */
export function tenths(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Throws unless `path` ends with one of `extensions` (an output file holds what its name says). */
export function assertExtension(path: string, flag: string, extensions: readonly string[]): void {
  const lower = path.toLowerCase();
  if (extensions.some((e) => lower.endsWith(e))) return;
  throw new Error(`--${flag} ${path}: this command writes ${extensions.join(' or ')} files; name the file so`);
}
