/** Messages between the render pool and its worker threads. */
import type { Camera } from './camera.js';
import type { RasterOptions } from './rasterize.js';
import type { PreparedMesh } from './triangles.js';

export interface RenderRequest {
  type: 'render';
  job: number;
  scene: number;
  /** Sent only when the worker does not hold this scene yet; SharedArrayBuffer-backed, so never copied. */
  data?: Float32Array;
  count: number;
  pitch: number;
  camera: Camera;
  options: RasterOptions;
  /** Tile rows [first, end) only (the reply then holds just those pixel rows); absent: the whole view. */
  rows?: readonly [number, number];
}

/** A view of a mesh (triangles.ts). */
export interface MeshRenderRequest {
  type: 'mesh';
  job: number;
  scene: number;
  /** Sent only when the worker does not hold this scene yet; its arrays are SharedArrayBuffer-backed, never copied. */
  mesh?: PreparedMesh;
  camera: Camera;
  options: RasterOptions;
  /** Pixel rows [first, end) only; absent: the whole view. */
  rows?: readonly [number, number];
}

export type WorkerRequest = RenderRequest | MeshRenderRequest;

export type RenderReply = { type: 'frame'; job: number; pixels: Uint8Array } | { type: 'error'; job: number; message: string };
