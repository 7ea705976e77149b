"""A deterministic stand-in provider for tests: no torch, no GPU, no weights.

- Images: a shaded disc on white whose colour and placement follow the prompt and seed.
- Image to 3D: the picture's opaque pixels lifted into a thin two-sided relief of Gaussians, laid out in
  TRELLIS's internal frame as the default orientation assumes (+Z up, the picture facing -Y), within
  [-0.5, 0.5]^3, in the raw values TRELLIS writes (logit opacity, log scale, unnormalised w-x-y-z quaternion).
- Mesh (a request with `mesh`): the same relief's PLY and a small real GLB, a textured sphere with a spire on
  top and a nose at the front, in the frame TRELLIS's to_glb writes (its Z-up to glTF's Y-up: internal
  (x, y, z) -> (x, z, -y)), so the relief's top (+Z) is the spire (+Y) and its front (-Y) the nose (+Z). The
  texture is `texture_size` pixels square: the front half red, the back half blue.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import threading
import time
from collections import deque
from typing import Optional

from .glb import encode_glb, read_glb
from .memory import resolve_offload
from .ply import PROPERTIES, encode_ply
from .pngcodec import PngError, decode_rgba, encode_rgba
from .provider import (BadInput, ImageRequest, MeshOptions, ModelStatus, Provider, ProviderStatus, SplatRequest,
                       warm_up_with_retry)

SH_C0 = 0.28209479177387814
# Samples of the silhouette: enough that the two-sided relief passes the validator's 7,000-Gaussian gate.
TARGET_SAMPLES = 6000
# Calls whose parameters are remembered (GET /v1/received), so tests can see what the service asked for.
RECEIVED_CALLS = 256
# The fake mesh, in to_glb's frame (glTF: +Y up, front toward +Z): a sphere of this radius, its +Y pole pulled
# out to SPIRE (the top) and its +Z pole to NOSE (the front), so a test can tell up and front apart.
SPHERE_RADIUS = 0.3
SPIRE = 0.48
NOSE = 0.42
# The stages the real provider runs, each ended by a cancellation check (with `stage_seconds` of pretend work).
STAGES = ("conditioning", "sparse structure", "structured latent", "decode")
BAKE_STEPS = ("simplify", "hidden faces", "atlas", "renders", "texture")
FRONT_COLOUR = (220, 40, 40, 255)


class FakeOutOfMemory(RuntimeError):
    """What the fake's warm-up raises for `warmup_failures` "oom": a CUDA out-of-memory, by its message."""
BACK_COLOUR = (40, 60, 220, 255)


class FakeProvider(Provider):
    name = "fake"

    def __init__(self, load_seconds: float = 0.0, fail_with: Optional[str] = None,
                 vram_total: Optional[int] = None, flux_offload: str = "auto", load_flux: bool = True,
                 mesh: bool = True, stage_seconds: float = 0.0, warmup_failures: Optional[list] = None):
        self.load_seconds = load_seconds
        self.fail_with = fail_with
        # A pretend GPU of this many bytes: the offload choice runs exactly as the real provider runs it.
        self.vram_total = vram_total
        self.flux_offload = resolve_offload(flux_offload, vram_total) if vram_total and load_flux else None
        self.load_flux = load_flux
        self.supports_mesh = mesh
        self._state = "loading"
        self._error: Optional[str] = None
        self._lock = threading.Lock()
        self._received: deque = deque(maxlen=RECEIVED_CALLS)
        self.stage_seconds = stage_seconds
        # Each warm-up attempt pops one: "oom" (out of memory), "error" (anything else), "" (passes).
        self.warmup_failures = list(warmup_failures or [])
        self.warmups = 0
        self.cache_emptied = 0
        self.stages_run: list = []

    def received(self) -> list:
        with self._lock:
            return list(self._received)

    def _record(self, call: dict) -> None:
        with self._lock:
            self._received.append(call)

    def load(self) -> None:
        time.sleep(self.load_seconds)
        if self.fail_with:
            self.mark_failed(self.fail_with)
            return
        if self.supports_mesh:
            failure = warm_up_with_retry(self._warm_up, self._empty_cache, lambda err: "out of memory" in str(err).lower())
            if failure:
                self.mark_failed(failure)
                return
        with self._lock:
            self._state = "ready"

    def _warm_up(self) -> None:
        """As the real provider's: one small mesh bake, checked, so a broken mesh stack fails the start."""
        self.warmups += 1
        failure = self.warmup_failures.pop(0) if self.warmup_failures else ""
        if failure == "oom":
            raise FakeOutOfMemory("CUDA out of memory. Tried to allocate 512.00 MiB")
        if failure:
            raise RuntimeError(f"warm-up bake broke: {failure}")
        read_glb(fake_glb(64))

    def _empty_cache(self) -> None:
        self.cache_emptied += 1

    def mark_failed(self, message: str) -> None:
        with self._lock:
            self._state, self._error = "failed", message

    def status(self) -> ProviderStatus:
        with self._lock:
            ready = self._state == "ready"
            return ProviderStatus(
                state=self._state,
                error=self._error,
                device="cpu (fake)",
                vram_total=self.vram_total,
                flux_offload=self.flux_offload,
                models=[ModelStatus("text-to-image", "fake-disc", ready and self.load_flux),
                        ModelStatus("image-to-3d", "fake-relief", ready)],
            )

    def generate_image(self, request: ImageRequest) -> bytes:
        if not self.load_flux:
            raise BadInput("this worker was started without the text-to-image model")
        self._record({"route": "images/generations", "prompt": request.prompt, "seed": request.seed,
                      "width": request.width, "height": request.height, "steps": request.steps})
        digest = hashlib.sha256(f"{request.prompt}\0{request.seed}".encode("utf-8")).digest()
        w, h = request.width, request.height
        colour = bytes((40 + digest[0] % 180, 40 + digest[1] % 180, 40 + digest[2] % 180))
        radius = min(w, h) * (0.28 + digest[3] / 255 * 0.08)
        cx = w / 2 + (digest[4] / 255 - 0.5) * 0.1 * w
        cy = h / 2 + (digest[5] / 255 - 0.5) * 0.1 * h
        white = b"\xff\xff\xff\xff"
        rows = bytearray()
        for y in range(h):
            dy = (y + 0.5 - cy) / radius
            row = bytearray(white * w)
            if abs(dy) < 1:
                half = math.sqrt(1 - dy * dy) * radius
                x0, x1 = max(0, int(cx - half)), min(w, int(cx + half))
                # Darker toward the bottom: a hint of light from above, like a studio shot.
                shade = 1.0 - 0.35 * (dy + 1) / 2
                pixel = bytes(int(c * shade) for c in colour) + b"\xff"
                row[x0 * 4:x1 * 4] = pixel * (x1 - x0)
            rows += row
        return encode_rgba(w, h, bytes(rows))

    def image_to_3d(self, request: SplatRequest) -> bytes:
        call = self._splat_call(request, None)
        self._record(call)
        self._stages(request, STAGES, call)
        return self._relief(request)

    def image_to_3d_mesh(self, request: SplatRequest, mesh: MeshOptions) -> tuple:
        if not self.supports_mesh:
            raise BadInput("this fake worker was started without meshes")
        call = self._splat_call(request, mesh)
        self._record(call)
        self._stages(request, STAGES + BAKE_STEPS, call)
        return self._relief(request), fake_glb(mesh.texture_size)

    def _stages(self, request: SplatRequest, stages: tuple, call: dict) -> None:
        """Pretend work, stage by stage, checking for cancellation before each as the real provider does;
        `stages_run` keeps the stages of the latest call that ran (for tests)."""
        self.stages_run = []
        for stage in stages:
            request.check()
            time.sleep(self.stage_seconds)
            self.stages_run.append(stage)

    @staticmethod
    def _splat_call(request: SplatRequest, mesh: Optional[MeshOptions]) -> dict:
        call = {"route": "image-to-3d", "seed": request.seed,
                "sparse_structure_steps": request.sparse_structure_steps,
                "sparse_structure_cfg": request.sparse_structure_cfg,
                "slat_steps": request.slat_steps, "slat_cfg": request.slat_cfg}
        if mesh is not None:
            call["mesh"] = {"simplify": mesh.simplify, "texture_size": mesh.texture_size}
        return call

    def _relief(self, request: SplatRequest) -> bytes:
        try:
            width, height, rgba = decode_rgba(request.png)
        except PngError as err:
            raise BadInput(f"image: {err}") from None
        inside = [i for i in range(width * height) if rgba[i * 4 + 3] >= 128]
        if not inside:
            raise BadInput("image has no opaque pixels (alpha >= 128): nothing to lift into 3D")
        xs = [i % width for i in inside]
        ys = [i // width for i in inside]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        stride = max(1, int(math.sqrt(len(inside) / TARGET_SAMPLES)))
        side = max(width, height)
        spacing = stride / side
        rng = random.Random(request.seed)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max(1.0, (x1 - x0) / 2), max(1.0, (y1 - y0) / 2)
        rows = []
        for py in range(y0, y1 + 1, stride):
            for px in range(x0, x1 + 1, stride):
                o = (py * width + px) * 4
                if rgba[o + 3] < 128:
                    continue
                r2 = ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2
                depth = 0.12 * math.sqrt(max(0.0, 1.0 - min(1.0, r2))) + 0.5 * spacing
                x = (px - width / 2) / side
                z = (height / 2 - py) / side
                dc = [(rgba[o + c] / 255 - 0.5) / SH_C0 for c in range(3)]
                alpha = min(0.99, max(0.01, rgba[o + 3] / 255 * 0.95))
                for facing, darken in ((-1.0, 0.0), (1.0, 0.3)):  # front toward -Y, then the back
                    angle = rng.uniform(-0.3, 0.3)
                    rows.append((
                        x, facing * depth * (1 + rng.uniform(-0.05, 0.05)), z,
                        dc[0] - darken, dc[1] - darken, dc[2] - darken,
                        math.log(alpha / (1 - alpha)),
                        math.log(0.6 * spacing), math.log(0.2 * spacing), math.log(0.6 * spacing),
                        math.cos(angle / 2) * 1.1, 0.0, math.sin(angle / 2) * 1.1, 0.0,
                    ))
        row = struct.Struct("<" + "f" * len(PROPERTIES))
        return encode_ply(len(rows), b"".join(row.pack(*r) for r in rows))


def sphere_mesh(subdivisions: int = 2) -> tuple:
    """(unit vertices, triangles) of an octahedron subdivided `subdivisions` times onto the unit sphere: it has
    exact poles on every axis. Triangles are counter-clockwise seen from outside."""
    vertices = [(1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0)]
    triangles = []
    for sx in (1, -1):
        for sy in (2, 3):
            for sz in (4, 5):
                triangles.append((0 if sx == 1 else 1, sy, sz))
    for _ in range(subdivisions):
        midpoints: dict = {}

        def midpoint(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in midpoints:
                m = [(vertices[a][i] + vertices[b][i]) / 2 for i in range(3)]
                length = math.sqrt(sum(c * c for c in m))
                vertices.append(tuple(c / length for c in m))
                midpoints[key] = len(vertices) - 1
            return midpoints[key]

        finer = []
        for a, b, c in triangles:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            finer += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
        triangles = finer
    return vertices, [_outward(vertices, t) for t in triangles]


def _outward(vertices: list, t: tuple) -> tuple:
    """The triangle wound counter-clockwise seen from outside (its normal points away from the centre)."""
    a, b, c = (vertices[i] for i in t)
    u = [b[i] - a[i] for i in range(3)]
    v = [c[i] - a[i] for i in range(3)]
    n = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
    centre = [(a[i] + b[i] + c[i]) / 3 for i in range(3)]
    return t if sum(n[i] * centre[i] for i in range(3)) > 0 else (t[0], t[2], t[1])


def fake_glb(texture_size: int) -> bytes:
    """The fake mesh as a GLB (to_glb's frame): spire at +Y, nose at +Z, front half red, back half blue."""
    unit, triangles = sphere_mesh()
    positions, uvs = [], []
    for x, y, z in unit:
        radius = SPIRE if y > 0.999 else NOSE if z > 0.999 else SPHERE_RADIUS
        positions.append((x * radius, y * radius, z * radius))
        # u runs from the front (z = +1, u = 0) to the back (u = 1); v from the top (glTF's v = 0) down.
        uvs.append((0.5 - 0.5 * z, 0.5 - 0.5 * y))
    half = texture_size // 2
    row = bytes(FRONT_COLOUR) * half + bytes(BACK_COLOUR) * (texture_size - half)
    texture = encode_rgba(texture_size, texture_size, row * texture_size)
    return encode_glb(positions, triangles, uvs, texture, name="fake-sphere")
