/** Worker thread of the render pool: holds the current scene (a cloud or a mesh) and renders the views it is sent. */
import { parentPort } from 'node:worker_threads';
import type { PreparedCloud } from './prepare.js';
import type { RenderReply, WorkerRequest } from './protocol.js';
import { Rasterizer } from './rasterize.js';
import { MeshRasterizer, type PreparedMesh } from './triangles.js';

const port = parentPort;
if (!port) throw new Error('render worker must run in a worker thread');

const rasterizer = new Rasterizer();
let meshRasterizer: MeshRasterizer | null = null;
let scene = -1;
let cloud: PreparedCloud = { count: 0, pitch: 0, data: new Float32Array(0) };
let mesh: PreparedMesh | null = null;

port.on('message', (message: WorkerRequest) => {
  try {
    let pixels: Uint8Array;
    if (message.type === 'mesh') {
      if (message.mesh) {
        scene = message.scene;
        mesh = message.mesh;
        cloud = { count: 0, pitch: 0, data: new Float32Array(0) };
      } else if (message.scene !== scene || !mesh) {
        throw new Error(`scene ${message.scene} was never sent to this worker`);
      }
      meshRasterizer ??= new MeshRasterizer();
      const { camera, options } = message;
      pixels = message.rows
        ? meshRasterizer.renderRows(mesh, camera, options, message.rows[0], message.rows[1])
        : meshRasterizer.render(mesh, camera, options);
    } else {
      if (message.data) {
        scene = message.scene;
        cloud = { count: message.count, pitch: message.pitch, data: message.data };
        mesh = null;
      } else if (message.scene !== scene || mesh) {
        throw new Error(`scene ${message.scene} was never sent to this worker`);
      }
      const { camera, options } = message;
      pixels = message.rows
        ? rasterizer.renderTileRows(cloud, camera, options, message.rows[0], message.rows[1])
        : rasterizer.render(cloud, camera, options);
    }
    const reply: RenderReply = { type: 'frame', job: message.job, pixels };
    port.postMessage(reply, [pixels.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: RenderReply = { type: 'error', job: message.job, message: (err as Error).message };
    port.postMessage(reply);
  }
});
