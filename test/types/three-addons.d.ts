// three.js's zstd decoder (zstddec), which its SPZLoader uses: the tests read SPZ version 4 with it, a build
// other than the writer's. three ships no declarations for its addons' libraries.
declare module 'three/examples/jsm/libs/zstddec.module.js' {
  export class ZSTDDecoder {
    init(): Promise<void>;
    decode(array: Uint8Array, uncompressedSize?: number): Uint8Array;
  }
}
