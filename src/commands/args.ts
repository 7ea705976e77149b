/**
 * What every operator command does with its arguments: parse the flags, take exactly one file or list
 * argument, print the usage on `--help` or on a mistake, read numeric flags within bounds, and read the files
 * the user names with errors that say which file and why.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandArgs<T extends Options> {
  values: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: T }>>['values'];
  /** The one positional argument. */
  target: string;
}

/** A mistake in a command's arguments: the CLI prints it after the command's name and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The flags of a command as a user types them: `--out (-o), --size, ..., --help`. */
export function flagList(options: Options): string {
  const flags = Object.entries(options).map(([name, o]) => `--${name}${o.short ? ` (-${o.short})` : ''}`);
  // The CLI answers --help for every command, whether or not the command parses it itself.
  if (!Object.hasOwn(options, 'help')) flags.push('--help');
  return flags.join(', ');
}

/**
 * node:util's parseArgs, with a mistake told in the command's terms: an unknown flag is named with the flags the
 * command takes (not parseArgs' advice about '--'). Throws a UsageError.
 */
export function parseFlags<T extends Options>(command: string, argv: string[], options: T, allowPositionals = true) {
  // A lenient pass first: it lists every option token, so the unknown ones can be named together.
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  const unknown = tokens.flatMap((t) => (t.kind === 'option' && !Object.hasOwn(options, t.name) ? [t.rawName] : []));
  if (unknown.length) {
    throw new UsageError(
      `unknown flag${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; fast3d ${command} takes ${flagList(options)}`,
    );
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Parses `argv` against `options` (a `help` flag prints `usage`). Returns the parsed arguments, or the exit code
 * when the command should stop: 0 after help, 2 after a mistake (unknown flag, not exactly one positional
 * argument, a `required` flag missing), with the usage on stderr.
 */
export function parseCommandArgs<T extends Options>(
  command: string,
  usage: string,
  argv: string[],
  options: T,
  required: (keyof T & string)[] = [],
): CommandArgs<T> | number {
  let parsed;
  try {
    parsed = parseFlags(command, argv, options);
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
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max)
    throw new Error(`--${name} must be a number from ${min} to ${max}, got "${text}"`);
  return v;
}

/** An integer flag within [min, max]; throws naming the flag. */
export function integerFlag(text: string, name: string, min: number, max: number): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
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

/** Why a file could not be read or written, in words (the error's code otherwise). */
export function fileProblem(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EISDIR':
      return 'it is a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return (err as Error).message;
  }
}

/** The bytes of a file the user named; one that cannot be read throws `cannot read PATH: why`. */
export async function readInputFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${fileProblem(err)}`);
  }
}
