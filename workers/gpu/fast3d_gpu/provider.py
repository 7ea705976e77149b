"""The model-provider interface the HTTP layer talks to, and the errors that map to HTTP statuses."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional


class BadInput(ValueError):
    """The request is malformed or out of range: HTTP 400."""


class NotReady(RuntimeError):
    """The models are still loading, or failed to load: HTTP 503."""


class OutOfMemory(RuntimeError):
    """The GPU ran out of memory; the provider freed what it could and stays usable: HTTP 503."""


class Cancelled(RuntimeError):
    """The job was cancelled (DELETE, or its client went away) between two stages: HTTP 499."""


class CancelToken:
    """Set from another thread (the DELETE route, the disconnect watcher); the provider calls `check()` between
    stages and bake steps, which raises Cancelled once set. Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(f"job cancelled: {self.reason}")


@dataclass
class ModelStatus:
    name: str
    id: str
    loaded: bool = False
    # The hub commit loaded (or "local folder"), once known.
    revision: Optional[str] = None


@dataclass
class ProviderStatus:
    """What GET /health reports. `state` is "loading", "ready" or "failed" (with `error` saying why)."""

    state: str = "loading"
    error: Optional[str] = None
    device: Optional[str] = None
    vram_total: Optional[int] = None
    vram_used: Optional[int] = None
    # FLUX's CPU-offload mode in use ("none", "model", "sequential"), once chosen.
    flux_offload: Optional[str] = None
    models: list = field(default_factory=list)


@dataclass
class ImageRequest:
    prompt: str
    width: int
    height: int
    steps: int
    seed: int
    cancel: Optional[CancelToken] = None

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.check()


@dataclass
class SplatRequest:
    """An RGBA PNG and TRELLIS's sampler parameters (sparse structure, then structured latent)."""

    png: bytes
    seed: int
    sparse_structure_steps: int
    sparse_structure_cfg: float
    slat_steps: int
    slat_cfg: float
    cancel: Optional[CancelToken] = None

    def check(self) -> None:
        """Raises Cancelled when the job was cancelled; providers call it between stages."""
        if self.cancel is not None:
            self.cancel.check()


@dataclass
class MeshOptions:
    """A mesh beside the Gaussians, baked as TRELLIS's to_glb bakes it: `simplify` is the share of triangles
    removed, `texture_size` the side of the base-colour texture in pixels."""

    simplify: float
    texture_size: int


class Provider:
    """Loads the models once (`load`, run in a background thread) and runs them. The HTTP layer serialises
    `generate_image` and `image_to_3d` under one lock, so a provider never runs two of them at once."""

    name = "abstract"
    # Whether `image_to_3d_mesh` can run (the mesh decoder and to_glb's dependencies are loaded).
    supports_mesh = False

    def load(self) -> None:
        raise NotImplementedError

    def status(self) -> ProviderStatus:
        raise NotImplementedError

    def generate_image(self, request: ImageRequest) -> bytes:
        """Returns PNG bytes."""
        raise NotImplementedError

    def image_to_3d(self, request: SplatRequest) -> bytes:
        """Returns a binary little-endian PLY of 3D Gaussians in TRELLIS's internal frame."""
        raise NotImplementedError

    def image_to_3d_mesh(self, request: SplatRequest, mesh: MeshOptions) -> tuple:
        """One TRELLIS run decoded twice: (the PLY `image_to_3d` returns, a GLB of the textured mesh in the frame
        TRELLIS's to_glb writes: glTF's +Y up, i.e. the internal frame with (x, y, z) -> (x, z, -y))."""
        raise BadInput(f"provider {self.name} makes no meshes")

    def received(self) -> Optional[list]:
        """The parameters of recent calls, oldest first, for providers that record them (the fake); None otherwise."""
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def warm_up_with_retry(run: Callable[[], None], free: Callable[[], None],
                       is_out_of_memory: Callable[[BaseException], bool]) -> Optional[str]:
    """Runs the warm-up once; a failure for lack of GPU memory (transient: another process, fragmentation) is
    retried once after `free()` empties the CUDA cache. Returns None when it passed, else why it failed, cause
    included, for /health."""
    try:
        run()
        return None
    except Exception as err:  # noqa: BLE001 (any warm-up failure is reported)
        if not is_out_of_memory(err):
            return f"warm-up failed: {_first_line(err)}"
        first = _first_line(err)
    free()
    try:
        run()
        return None
    except Exception as err:  # noqa: BLE001
        return (f"warm-up failed twice, the second time after emptying the CUDA cache: {_first_line(err)} "
                f"(first: {first})")
