/**
 * Presets: named, resolved job settings that a request may choose by name. A request without one gets the
 * default preset; an unknown name is refused (UnknownPresetError, a 400 that lists the known names). The config
 * declares them (`presets:`, config/presets.ts); each is the config's sections with its overrides applied.
 */
import { applyPreset, knobValues, presetNames, type PresetValues } from '../config/presets.js';
import type { Config } from '../config/schema.js';
import type { JobSettings } from './context.js';
import { settingsFingerprint } from './settings.js';

export class UnknownPresetError extends Error {
  override name = 'UnknownPresetError';

  constructor(
    readonly preset: string,
    readonly known: readonly string[],
  ) {
    super(`unknown preset "${preset.slice(0, 60)}"; known presets: ${known.join(', ')}`);
  }
}

export interface ResolvedPreset {
  name: string;
  description: string;
  settings: JobSettings;
  /** settingsFingerprint(settings): what the cache keys on, so editing a preset invalidates its entries. */
  fingerprint: string;
  /** The values of every knob a preset may set, as this preset resolves them (reports, job views). */
  values: PresetValues;
}

export interface PresetInit {
  settings: JobSettings;
  description?: string;
}

export class Presets {
  private readonly resolved = new Map<string, ResolvedPreset>();

  /** @param presets name -> settings, in the order they are listed; `defaultName` must be one of them. */
  constructor(
    presets: Record<string, PresetInit>,
    readonly defaultName: string,
  ) {
    for (const [name, init] of Object.entries(presets)) {
      const settings = init.settings;
      this.resolved.set(name, {
        name,
        description: init.description ?? '',
        settings,
        fingerprint: settingsFingerprint(settings),
        values: knobValues(settings),
      });
    }
    if (!this.resolved.has(defaultName)) throw new UnknownPresetError(defaultName, this.names());
  }

  names(): string[] {
    return [...this.resolved.keys()];
  }

  /** The preset of this name, or the default one when the request names none. */
  resolve(name?: string): ResolvedPreset {
    const preset = this.resolved.get(name ?? this.defaultName);
    if (!preset) throw new UnknownPresetError(name!, this.names());
    return preset;
  }
}

/** The config's presets, resolved onto its sections; requests naming none get `contract.preset`. */
export function presetsOf(config: Config): Presets {
  const presets: Record<string, PresetInit> = {};
  for (const name of presetNames(config)) {
    const preset = config.presets[name];
    presets[name] = { settings: applyPreset(config, preset), description: preset.description };
  }
  return new Presets(presets, config.contract.preset);
}
