/**
 * A real service process whose GPU stages are fake waits of FAKE_GPU_MS: `node --import tsx
 * test/helpers/slow-server.ts --config FILE`
 * (FAKE_GAUSSIANS sets the size of its answers). It runs the same startServer and signal handling as `fast3d serve`.
 */
import { startServer, stopOnSignals } from '../../src/main.js';
import { fakeStages } from './fake-stages.js';

const running = await startServer(process.argv.slice(2), {
  stages: fakeStages({ imageTo3dMs: Number(process.env.FAKE_GPU_MS ?? 1000), gaussians: Number(process.env.FAKE_GAUSSIANS ?? 8000) })
    .stages,
});
stopOnSignals(running);
