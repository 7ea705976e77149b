/** Loads the YAML config, applies environment overrides and validates it; errors name the key path. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { USER_PRESET_ROW } from './presets.js';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** Path of a YAML file; FAST3D_CONFIG is used when absent. No file means all defaults. */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env.FAST3D_CONFIG;
  let raw: unknown = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
    }
  }
  return parseConfig(applyEnv(raw, env), path ?? 'defaults');
}

/** Validates a plain object against the schema. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ConfigError(`invalid config (${source}):\n${formatIssues(result.error)}`);
}

export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.join('.') || '(root)';
      if (issue.code === 'unrecognized_keys') {
        const prefix = issue.path.length ? `${path}.` : '';
        return `  ${issue.keys.map((k) => prefix + k).join(', ')}: unknown key`;
      }
      return `  ${path}: ${issue.message}`;
    })
    .join('\n');
}

function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const config = raw as Record<string, unknown>;
  const server = { ...((config.server as Record<string, unknown> | undefined) ?? {}) };
  if (env.PORT !== undefined && env.PORT !== '') {
    // Said to be the variable's fault: the schema would blame server.port in the file.
    const port = Number(env.PORT);
    if (!/^\d+$/.test(env.PORT.trim()) || port > 65535) {
      throw new ConfigError(`environment variable PORT must be a port number from 0 to 65535, got "${env.PORT}"`);
    }
    server.port = port;
  }
  if (env.HOST) server.host = env.HOST;
  return { ...config, server };
}

/** Rows of (key path, default, description) for every leaf, for docs and `fast3d config`. */
export function describeConfig(): { key: string; default: unknown; description: string }[] {
  const rows: { key: string; default: unknown; description: string }[] = [];
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  walk(configSchema, [], rows, defaults);
  rows.push(USER_PRESET_ROW);
  return rows;
}

function walk(schema: z.ZodType, path: string[], rows: { key: string; default: unknown; description: string }[], defaults: unknown): void {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
      walk(child, [...path, key], rows, (defaults as Record<string, unknown> | undefined)?.[key]);
    }
    return;
  }
  rows.push({ key: path.join('.'), default: defaults, description: schema.description ?? '' });
  // A list of objects (burst.peers): its items' keys too, as `list[].key`; an item key with no default is required.
  if (inner instanceof z.ZodArray) {
    const item = unwrap((inner as unknown as { element: z.ZodType }).element);
    if (!(item instanceof z.ZodObject)) return;
    for (const [key, child] of Object.entries(item.shape as Record<string, z.ZodType>)) {
      const last = path.length - 1;
      const itemPath = [...path.slice(0, last), `${path[last]}[]`, key];
      const fallback = child.safeParse(undefined);
      rows.push({ key: itemPath.join('.'), default: fallback.success ? fallback.data : 'required', description: child.description ?? '' });
    }
  }
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) {
    s = (s as unknown as { def: { innerType: z.ZodType } }).def.innerType;
  }
  return s;
}

/** The configuration reference (docs/configuration.md), generated from the schema so it cannot drift. */
export function configMarkdown(): string {
  let text =
    '# Configuration reference\n\nGenerated from the schema by `npm run docs:config`; do not edit by hand.\n' +
    'Every key is optional: a missing key takes its default. Environment: `PORT`, `HOST` and `FAST3D_CONFIG` (the file).\n';
  let section = '';
  for (const row of describeConfig()) {
    const top = row.key.split('.')[0];
    if (top !== section) {
      section = top;
      text += `\n## \`${top}\`\n\n| key | default | description |\n| --- | --- | --- |\n`;
    }
    text += `| \`${row.key}\` | \`${JSON.stringify(row.default)}\` | ${row.description.replace(/\|/g, '\\|')} |\n`;
  }
  return text;
}
