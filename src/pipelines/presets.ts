/**
 * Presets: named, resolved job settings that a request may choose by name. A request without one gets the
 * default preset; an unknown name is refused (UnknownPresetError, a 400 that lists the known names).
 */
import type { JobSettings } from './context.js';
import { settingsFingerprint } from './settings.js';

export class UnknownPresetError extends Error {
  override name = 'UnknownPresetError';

  constructor(readonly preset: string, readonly known: readonly string[]) {
    super(`unknown preset "${preset.slice(0, 60)}"; known presets: ${known.join(', ')}`);
  }
}

export interface ResolvedPreset {
  name: string;
  settings: JobSettings;
  /** settingsFingerprint(settings): what the cache keys on, so editing a preset invalidates its entries. */
  fingerprint: string;
}

export class Presets {
  private readonly resolved = new Map<string, ResolvedPreset>();

  /** @param presets name -> settings, in the order they are listed; `defaultName` must be one of them. */
  constructor(presets: Record<string, JobSettings>, readonly defaultName: string) {
    for (const [name, settings] of Object.entries(presets)) this.resolved.set(name, { name, settings, fingerprint: settingsFingerprint(settings) });
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
