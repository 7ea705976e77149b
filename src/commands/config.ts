/**
 * `fast3d config [--check FILE] [--markdown]`: lists every configuration key with its default and description,
 * or validates a config file (exit 2 naming the bad key).
 */
import { configMarkdown, ConfigError, describeConfig, loadConfig } from '../config/load.js';
import { flattenValues, presetNames, presetOverrides } from '../config/presets.js';
import { parseFlags } from './args.js';

export const summary = 'list every config key with default and description (--markdown), or --check FILE';

export const usage = `usage: fast3d config [--markdown]
       fast3d config --check FILE
       fast3d config --presets [--config FILE]

Lists every configuration key with its default and description (--markdown: the docs/configuration.md
table), or validates FILE (exit 2 naming each bad key), or lists the presets a request may name with what
each changes from the config (FILE's, or the defaults).
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(
    'config',
    argv,
    { check: { type: 'string' }, markdown: { type: 'boolean' }, presets: { type: 'boolean' }, config: { type: 'string' } },
    false,
  );
  if (values.presets) return listPresets(values.config);
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

function listPresets(path: string | undefined): number {
  let config;
  try {
    config = loadConfig({ path, env: {} });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  for (const name of presetNames(config)) {
    const preset = config.presets[name];
    const marks = [
      name === config.contract.preset ? 'contract.preset' : '',
      name === config.contract.image_file_preset ? 'contract.image_file_preset' : '',
    ].filter(Boolean);
    process.stdout.write(`${name}${marks.length ? ` (${marks.join(', ')})` : ''}: ${preset.description}\n`);
    const changes = flattenValues(presetOverrides(preset));
    if (!changes.length) process.stdout.write('    the config as it stands\n');
    for (const [key, value] of changes) process.stdout.write(`    ${key} = ${JSON.stringify(value)}\n`);
  }
  return 0;
}
