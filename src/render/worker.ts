/** Worker thread of the render pool: holds the current scene and renders the views it is sent. */
import { parentPort } from 'node:worker_threads';
import type { PreparedCloud } from './prepare.js';
import type { RenderReply, RenderRequest } from './protocol.js';
import { Rasterizer } from './rasterize.js';

const port = parentPort;
if (!port) throw new Error('render worker must run in a worker thread');

const rasterizer = new Rasterizer();
let scene = -1;
let cloud: PreparedCloud = { count: 0, pitch: 0, data: new Float32Array(0) };

port.on('message', (message: RenderRequest) => {
  try {
    if (message.data) {
      scene = message.scene;
      cloud = { count: message.count, pitch: message.pitch, data: message.data };
    } else if (message.scene !== scene) {
      throw new Error(`scene ${message.scene} was never sent to this worker`);
    }
    const { camera, options } = message;
    const pixels = message.rows ? rasterizer.renderTileRows(cloud, camera, options, message.rows[0], message.rows[1]) : rasterizer.render(cloud, camera, options);
    const reply: RenderReply = { type: 'frame', job: message.job, pixels };
    port.postMessage(reply, [pixels.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: RenderReply = { type: 'error', job: message.job, message: (err as Error).message };
    port.postMessage(reply);
  }
});
