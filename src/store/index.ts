/**
 * Opening the configured artefact store (`store` in the config): the disk store or the S3 store. A config the
 * schema accepts but that cannot work (an S3 credential variable that is not set) is refused here, naming the
 * key and the variable.
 */
import type { Config } from '../config/schema.js';
import { DiskStore } from './disk.js';
import { S3Store } from './s3.js';
import type { ArtefactStore, StoreObserver } from './store.js';

export { DiskStore } from './disk.js';
export { S3Store } from './s3.js';
export * from './store.js';

export type StoreConfig = Config['store'];

export class StoreConfigError extends Error {
  override name = 'StoreConfigError';
}

export interface OpenStoreOptions {
  env?: NodeJS.ProcessEnv;
  observe?: StoreObserver;
}

const MIB = 1024 * 1024;

export async function openStore(config: StoreConfig, options: OpenStoreOptions = {}): Promise<ArtefactStore> {
  const maxObjectBytes = Math.floor(config.max_object_mb * MIB);
  if (config.backend === 'disk') {
    return DiskStore.open({
      directory: config.directory,
      maxObjectBytes,
      tempMaxAgeMs: config.temp_max_age_s * 1000,
      observe: options.observe,
    });
  }
  const env = options.env ?? process.env;
  const s3 = config.s3;
  if (!s3.bucket) throw new StoreConfigError('store.s3.bucket: required when store.backend is s3');
  const variable = (key: 'access_key_env' | 'secret_key_env') => {
    const value = env[s3[key]];
    if (!value) throw new StoreConfigError(`store.s3.${key}: the environment variable ${s3[key]} is not set (store.backend is s3)`);
    return value;
  };
  return new S3Store({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    prefix: s3.prefix,
    forcePathStyle: s3.force_path_style,
    credentials: {
      accessKeyId: variable('access_key_env'),
      secretAccessKey: variable('secret_key_env'),
      sessionToken: env[s3.session_token_env] || undefined,
    },
    maxObjectBytes,
    timeoutMs: s3.timeout_s * 1000,
    observe: options.observe,
  });
}
