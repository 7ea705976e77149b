/**
 * `fast3d config [--check FILE] [--markdown]`: lists every configuration key with its default and description,
 * or validates a config file (exit 2 naming the bad key).
 */
import { parseArgs } from 'node:util';
import { configMarkdown, ConfigError, describeConfig, loadConfig } from '../config/load.js';

export const summary = 'list every config key with default and description (--markdown), or --check FILE';

export const usage = `usage: fast3d config [--markdown]
       fast3d config --check FILE

Lists every configuration key with its default and description (--markdown: the docs/configuration.md
table), or validates FILE (exit 2 naming each bad key).
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { check: { type: 'string' }, markdown: { type: 'boolean' } } });
  if (values.check) {
    try {
      loadConfig({ path: values.check, env: {} });
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      throw err;
    }
    process.stdout.write(`${values.check}: ok\n`);
    return 0;
  }
  const rows = describeConfig();
  if (values.markdown) {
    process.stdout.write(configMarkdown());
  } else {
    for (const r of rows) process.stdout.write(`${r.key} = ${JSON.stringify(r.default)}\n    ${r.description}\n`);
  }
  return 0;
}
