/**
 * A second process writing one key of a disk store over and over (store tests): argv = directory, key, fill
 * byte, size in bytes, rounds. Prints "done" when every write went through.
 */
import { DiskStore } from '../../src/store/disk.js';

const [directory, key, fill, size, rounds] = process.argv.slice(2);
const store = await DiskStore.open({ directory, maxObjectBytes: 64 * 1024 * 1024, tempMaxAgeMs: 3_600_000 });
const bytes = new Uint8Array(Number(size)).fill(Number(fill));
for (let i = 0; i < Number(rounds); i++) await store.put(key, bytes);
await store.close();
process.stdout.write('done\n');
