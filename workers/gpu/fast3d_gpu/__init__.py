"""fast3d's GPU worker: one process owns the GPU and the models (FLUX.1-schnell, TRELLIS) and serves them on
loopback to the TypeScript service. The HTTP layer uses only the standard library; torch is imported by the
real provider alone, so the worker starts (and says what is missing) on a machine without it."""

__version__ = "0.1.0"
