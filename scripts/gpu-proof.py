#!/usr/bin/env python3
"""What a lent GPU proves: the CUDA pieces of the GPU worker that travel with the repository, checked on a bare
machine with PyTorch, no internet and no weights, in a pass/fail table within minutes.

    python3 scripts/gpu-proof.py                 # on the GPU (cuda:0): every check, full sizes
    python3 scripts/gpu-proof.py --quick         # smaller sizes (seconds)
    python3 scripts/gpu-proof.py --device cpu --quick   # the same code on a CPU (no CUDA rows)
    python3 scripts/gpu-proof.py --json out.json # also write the rows as JSON

Rows (PASS / FAIL / n/a), exit status 1 when any row failed:
  device          torch, its CUDA, the card and its compute capability
  FA3 decision    whether xformers may keep FlashAttention-3 on this card (fast3d_gpu/attention.py); with xformers
                  installed, the guard is applied and a half-precision attention call is compared with torch's
  raster          the bake's PyTorch rasteriser on a sphere with a hidden sphere inside: every outer face seen, no
                  inner face seen, and the face buffer identical on a second run (and to the CPU's on a GPU)
  bake mesh       a synthetic textured sphere rendered from the bake's cameras, baked onto a fresh atlas by the
                  licence-clean bake: PSNR of the baked texture against the views (TRELLIS's bake measure)
  gsplat          the Gaussian renders the bake uses (gsplat) against a reference splatter in plain torch on
                  synthetic Gaussians (n/a when gsplat is not installed, as on a bare machine)
  bake Gaussians  synthetic Gaussians on a sphere rendered (gsplat when installed, else the reference splatter)
                  and baked onto the sphere mesh: PSNR of the texture against the Gaussians
  same seed       the Gaussian bake twice with one seed: largest texel difference (atomic adds in the texture
                  gradient may move a texel by a step; more is a failure)
  time            the whole run against the 10-minute budget
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "workers", "gpu"))

from fast3d_gpu.attention import fa3_allowed, fa3_decision  # noqa: E402 (standard library only)

BUDGET_S = 600
MESH_PSNR_MIN = 30.0
GAUSSIAN_PSNR_MIN = 24.0
GSPLAT_PSNR_MIN = 30.0
SAME_SEED_MAX_STEPS = 2  # texel steps of 1/255


@dataclass
class Sizes:
    views: int
    resolution: int
    texture: int
    steps: int
    subdivisions: int
    gaussians: int


FULL = Sizes(views=100, resolution=512, texture=1024, steps=2500, subdivisions=5, gaussians=8000)
QUICK = Sizes(views=12, resolution=96, texture=128, steps=600, subdivisions=3, gaussians=1500)


class NotApplicable(Exception):
    """The check cannot run here (a package is missing); the row says n/a and why."""


@dataclass
class Row:
    name: str
    status: str
    detail: str
    seconds: float = 0.0


@dataclass
class Table:
    rows: List[Row] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str, seconds: float = 0.0) -> Row:
        if status not in ("PASS", "FAIL", "n/a"):
            raise ValueError(f"status must be PASS, FAIL or n/a, not {status!r}")
        row = Row(name, status, detail, seconds)
        self.rows.append(row)
        return row

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.rows)

    def render(self) -> str:
        lines = [f"{'check':<15} {'result':<6} {'time':>7}  detail"]
        for r in self.rows:
            lines.append(f"{r.name:<15} {r.status:<6} {r.seconds:>6.1f}s  {r.detail}")
        return "\n".join(lines)


def run_check(table: Table, name: str, check: Callable[[], tuple]) -> Row:
    """Runs `check`, which returns (passed, detail); an exception is a FAIL naming it, NotApplicable is n/a."""
    started = time.monotonic()
    try:
        passed, detail = check()
        status = "PASS" if passed else "FAIL"
    except NotApplicable as reason:
        status, detail = "n/a", str(reason)
    except Exception as err:  # noqa: BLE001 (any failure is the row's answer)
        status, detail = "FAIL", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    row = table.add(name, status, detail, time.monotonic() - started)
    print(f"gpu-proof: {row.name}: {row.status} {row.detail}", file=sys.stderr, flush=True)
    return row


def time_verdict(seconds: float, budget: float = BUDGET_S) -> tuple:
    return seconds <= budget, f"{seconds:.0f} s of {budget:.0f} s"


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Check the GPU worker's CUDA pieces that travel with the repository.")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="where to run (default cuda:0)")
    p.add_argument("--quick", action="store_true", help="small sizes: seconds instead of minutes")
    p.add_argument("--json", default="", help="also write the rows to this JSON file")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic scenes and the bakes")
    return p.parse_args(argv)


# --- synthetic scenes ---------------------------------------------------------------------------------------------

def surface_colour(torch: Any, points: Any) -> Any:
    """A smooth colour over the sphere, distinct on every side, so a flipped or shifted texture shows."""
    d = points / points.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return torch.stack([0.5 + 0.4 * d[..., 0], 0.5 + 0.4 * d[..., 1] * d[..., 2].sign(), 0.5 + 0.4 * d[..., 2]], dim=-1)


def sphere(torch: Any, subdivisions: int, radius: float, device: Any) -> tuple:
    """(vertices, faces) of the fake provider's subdivided octahedron, scaled."""
    from fast3d_gpu.fake import sphere_mesh

    unit, triangles = sphere_mesh(subdivisions)
    return (torch.tensor(unit, dtype=torch.float32, device=device) * radius,
            torch.tensor(triangles, dtype=torch.int64, device=device))


def grid_atlas(torch: Any, vertices: Any, faces: Any, texture: int) -> tuple:
    """Every triangle in a cell of its own (lower-left or upper-right half), a texel of gutter: (vertices, faces,
    uvs) with each corner its own vertex. A crude but valid atlas, unlike xatlas's, for checking the bake alone."""
    count = faces.shape[0]
    cells = math.ceil(math.sqrt(count / 2))
    size = 1.0 / cells
    gutter = 1.0 / texture
    cell = torch.arange(count, device=faces.device) // 2
    upper = (torch.arange(count, device=faces.device) % 2).bool()
    x0 = (cell % cells).float() * size + gutter
    y0 = (cell // cells).float() * size + gutter
    s = size - 3 * gutter
    corners = torch.stack([
        torch.stack([x0, y0], 1), torch.stack([x0 + s, y0], 1), torch.stack([x0, y0 + s], 1)], 1)
    flipped = torch.stack([
        torch.stack([x0 + s + gutter, y0 + s + gutter], 1), torch.stack([x0 + gutter, y0 + s + gutter], 1),
        torch.stack([x0 + s + gutter, y0 + gutter], 1)], 1)
    corners = torch.where(upper[:, None, None], flipped, corners)
    return vertices[faces].reshape(-1, 3), torch.arange(count * 3, device=faces.device).reshape(-1, 3), corners.reshape(-1, 2)


def render_mesh_views(torch: Any, vertices: Any, faces: Any, extrinsics: Any, intrinsics: Any, resolution: int) -> tuple:
    """(colours, alphas) of the sphere coloured by surface_colour, through the bake's own rasteriser."""
    from fast3d_gpu import raster

    screen, depth = raster.project(vertices, extrinsics, intrinsics, resolution, resolution)
    result = raster.rasterize(screen[:, faces], depth[:, faces], resolution, resolution)
    view, py, px, face = raster.covered_pixels(result)
    weights = raster.barycentrics(result, view, face, px.float() + 0.5, py.float() + 0.5)
    points = (weights[:, :, None] * vertices[faces[face]]).sum(1)
    colours = torch.zeros(extrinsics.shape[0], resolution, resolution, 3, device=vertices.device)
    colours[view, py, px] = surface_colour(torch, points)
    return colours, result.covered.float()


def synthetic_gaussians(torch: Any, count: int, radius: float, device: Any, seed: int) -> Any:
    """Gaussians spread over a sphere's surface, flat along the normal, with TRELLIS's Gaussian attributes."""
    from types import SimpleNamespace

    generator = torch.Generator().manual_seed(seed)
    golden = math.pi * (3 - math.sqrt(5))
    i = torch.arange(count, dtype=torch.float32)
    z = 1 - 2 * (i + 0.5) / count
    ring = torch.sqrt(1 - z * z)
    points = torch.stack([ring * torch.cos(golden * i), ring * torch.sin(golden * i), z], 1) * radius
    normal = points / radius
    # A rotation taking +Z to the normal (shortest arc), as a w-x-y-z quaternion.
    w = 1 + normal[:, 2]
    quats = torch.stack([w, -normal[:, 1], normal[:, 0], torch.zeros(count)], 1)
    quats[w < 1e-6] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    quats = quats / quats.norm(dim=1, keepdim=True)
    spacing = radius * math.sqrt(4 * math.pi / count)
    scales = torch.tensor([spacing * 0.6, spacing * 0.6, spacing * 0.05]).expand(count, 3).clone()
    scales *= 1 + 0.05 * torch.rand(count, 1, generator=generator)
    sh_c0 = 0.28209479177387814
    features = ((surface_colour(torch, points) - 0.5) / sh_c0)[:, None, :]
    return SimpleNamespace(get_xyz=points.to(device), get_rotation=quats.to(device), get_scaling=scales.to(device),
                           get_opacity=torch.full((count, 1), 0.95, device=device), get_features=features.to(device),
                           active_sh_degree=0)


def quaternion_matrices(torch: Any, q: Any) -> Any:
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)


def reference_splat(torch: Any, g: Any, extrinsic: Any, intrinsic: Any, resolution: int, eps2d: float = 0.1) -> tuple:
    """One view of the Gaussians in plain torch (EWA splatting, front to back, opacity compensated for the 2D
    filter as mip-splatting's and gsplat's antialiased mode are): (colour (H, W, 3), alpha (H, W))."""
    means = g.get_xyz
    camera = means @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    z = camera[:, 2]
    keep = z > 0.2
    fx, fy = intrinsic[0, 0] * resolution, intrinsic[1, 1] * resolution
    cx, cy = intrinsic[0, 2] * resolution, intrinsic[1, 2] * resolution
    rotation = quaternion_matrices(torch, g.get_rotation)
    covariance = rotation @ torch.diag_embed(g.get_scaling ** 2) @ rotation.transpose(1, 2)
    world_to_camera = extrinsic[:3, :3]
    cam_cov = world_to_camera @ covariance @ world_to_camera.T
    x, y = camera[:, 0], camera[:, 1]
    jacobian = torch.zeros(means.shape[0], 2, 3, device=means.device)
    jacobian[:, 0, 0] = fx / z
    jacobian[:, 0, 2] = -fx * x / (z * z)
    jacobian[:, 1, 1] = fy / z
    jacobian[:, 1, 2] = -fy * y / (z * z)
    cov2 = jacobian @ cam_cov @ jacobian.transpose(1, 2)
    det_before = (cov2[:, 0, 0] * cov2[:, 1, 1] - cov2[:, 0, 1] ** 2).clamp(min=0)
    cov2 = cov2 + eps2d * torch.eye(2, device=means.device)
    det = cov2[:, 0, 0] * cov2[:, 1, 1] - cov2[:, 0, 1] ** 2
    opacity = g.get_opacity[:, 0] * torch.sqrt(det_before / det)
    conic = torch.stack([cov2[:, 1, 1], -cov2[:, 0, 1], cov2[:, 0, 0]], 1) / det[:, None]
    centre = torch.stack([fx * x / z + cx, fy * y / z + cy], 1)
    colour = (0.28209479177387814 * g.get_features[:, 0, :] + 0.5).clamp(min=0)
    order = torch.argsort(torch.where(keep, z, torch.full_like(z, float("inf"))))
    order = order[keep[order]]
    centre, conic, opacity, colour = centre[order], conic[order], opacity[order], colour[order]
    ys, xs = torch.meshgrid(torch.arange(resolution, device=means.device), torch.arange(resolution, device=means.device),
                            indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float() + 0.5
    out_colour = torch.zeros(pixels.shape[0], 3, device=means.device)
    out_alpha = torch.zeros(pixels.shape[0], device=means.device)
    chunk = max(1, (1 << (26 if means.is_cuda else 24)) // max(1, centre.shape[0]))
    for first in range(0, pixels.shape[0], chunk):
        d = pixels[first:first + chunk, None, :] - centre[None]
        power = -0.5 * (conic[None, :, 0] * d[..., 0] ** 2 + conic[None, :, 2] * d[..., 1] ** 2) - conic[None, :, 1] * d[..., 0] * d[..., 1]
        alpha = (opacity[None] * torch.exp(power.clamp(max=0))).clamp(max=0.99)
        alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
        transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
        weights = alpha * transmittance
        out_colour[first:first + chunk] = weights @ colour
        out_alpha[first:first + chunk] = weights.sum(1)
    return out_colour.reshape(resolution, resolution, 3), out_alpha.reshape(resolution, resolution)


def psnr(torch: Any, a: Any, b: Any, mask: Any) -> float:
    mse = float(((a - b)[mask] ** 2).mean()) if bool(mask.any()) else 1.0
    return 10 * math.log10(1 / mse) if mse > 0 else 99.0


# --- checks -------------------------------------------------------------------------------------------------------

class Proof:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.torch: Any = None
        self.device: Any = None

    def device_row(self) -> tuple:
        try:
            import torch
        except ImportError as err:
            return False, f"torch is not installed for {sys.executable} ({err}); nothing else can run"
        self.torch = torch
        if self.args.device == "cpu":
            self.device = torch.device("cpu")
            return True, f"torch {torch.__version__} on the CPU (--device cpu)"
        if not torch.cuda.is_available():
            return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
        self.device = torch.device("cuda", 0)
        major, minor = torch.cuda.get_device_capability(0)
        total = torch.cuda.get_device_properties(0).total_memory / 1024 ** 3
        return True, (f"{torch.cuda.get_device_name(0)}, compute {major}.{minor}, {total:.0f} GiB; torch "
                      f"{torch.__version__}, CUDA {torch.version.cuda}")

    def need_torch(self) -> Any:
        if self.torch is None or self.device is None:
            raise NotApplicable("no usable torch device (see the device row)")
        return self.torch

    def fa3_row(self) -> tuple:
        torch = self.need_torch()
        if self.device.type != "cuda":
            raise NotApplicable("no CUDA device: " + fa3_decision((9, 0)).split(":", 1)[1].strip() + " on 9.0, off from 10.0")
        capability = tuple(torch.cuda.get_device_capability(0))
        decision = fa3_decision(capability)
        try:
            import xformers.ops as xops
            import xformers.ops.fmha as fmha
        except ImportError:
            return True, decision + "; xformers not installed: decision only"
        from fast3d_gpu.attention import apply_fa3_guard

        apply_fa3_guard(torch, fmha)
        if fmha._get_use_fa3() != fa3_allowed(capability):
            return False, decision + f"; but xformers' flag reads {fmha._get_use_fa3()}"
        q, k, v = (torch.randn(2, 256, 8, 64, device=self.device, dtype=torch.float16) for _ in range(3))
        out = xops.memory_efficient_attention(q, k, v)
        expected = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        error = float((out - expected).abs().max())
        return error < 1e-2, decision + f"; fp16 attention matches torch's (max error {error:.1e})"

    def raster_row(self) -> tuple:
        torch = self.need_torch()
        from fast3d_gpu import bake, raster

        outer_v, outer_f = sphere(torch, self.sizes.subdivisions, 0.4, self.device)
        inner_v, inner_f = sphere(torch, 2, 0.15, self.device)
        vertices = torch.cat([outer_v, inner_v])
        faces = torch.cat([outer_f, inner_f + outer_v.shape[0]])
        seen = bake.face_visibility(vertices, faces.int(), 24, self.sizes.resolution * 2)
        outer_seen = float((seen[:outer_f.shape[0]] > 0).float().mean())
        inner_seen = int((seen[outer_f.shape[0]:] > 0).sum())
        extrinsics, intrinsics = bake.orbit_cameras(torch, 3, self.device)
        screen, depth = raster.project(vertices, extrinsics, intrinsics, 256, 256)
        first = raster.rasterize(screen[:, faces], depth[:, faces], 256, 256).face
        again = raster.rasterize(screen[:, faces], depth[:, faces], 256, 256, budget=1 << 16).face
        same = bool(torch.equal(first, again))
        detail = (f"{outer_seen:.1%} of {outer_f.shape[0]} outer faces seen, {inner_seen} of {inner_f.shape[0]} "
                  f"hidden faces seen; face buffer {'identical' if same else 'DIFFERS'} on a second run")
        passed = outer_seen > 0.999 and inner_seen == 0 and same
        if self.device.type == "cuda":
            cpu = raster.rasterize(screen.cpu()[:, faces.cpu()], depth.cpu()[:, faces.cpu()], 256, 256).face
            mismatch = float((cpu != first.cpu()).float().mean())
            detail += f", {mismatch:.3%} of pixels differ from the CPU's"
            passed = passed and mismatch < 0.001
        return passed, detail

    def bake_mesh_row(self) -> tuple:
        torch = self.need_torch()
        from fast3d_gpu import bake

        s = self.sizes
        vertices, faces = sphere(torch, s.subdivisions, 0.4, self.device)
        extrinsics, intrinsics = bake.orbit_cameras(torch, s.views, self.device)
        colours, alphas = render_mesh_views(torch, vertices, faces, extrinsics, intrinsics, s.resolution)
        v, f, uv = grid_atlas(torch, vertices, faces, s.texture)
        samples = bake.view_samples(v, f, uv, extrinsics, intrinsics, colours, alphas, s.texture)
        texture = bake.optimise_texture(samples, s.texture, s.steps, self.args.seed, self.device)
        l1, quality = bake.fidelity(texture, samples)
        return quality >= MESH_PSNR_MIN, f"PSNR {quality:.1f} dB (needs {MESH_PSNR_MIN:.0f}), L1 {l1:.4f}, {f.shape[0]} faces, {s.views} views, {s.texture} px"

    def gaussians(self) -> Any:
        torch = self.need_torch()
        return synthetic_gaussians(torch, self.sizes.gaussians, 0.4, self.device, self.args.seed)

    def gsplat_row(self) -> tuple:
        torch = self.need_torch()
        from fast3d_gpu import bake

        try:
            import gsplat  # noqa: F401
        except ImportError:
            raise NotApplicable("gsplat is not installed here (the image builds it); the bake rows use the reference splatter") from None
        if self.device.type != "cuda":
            raise NotApplicable("gsplat renders on CUDA only")
        g = self.gaussians()
        extrinsics, intrinsics = bake.orbit_cameras(torch, 4, self.device)
        colours, alphas = bake.render_gaussians(g, extrinsics, intrinsics, self.sizes.resolution)
        worst = 99.0
        for i in range(4):
            reference, alpha = reference_splat(torch, g, extrinsics[i], intrinsics[i], self.sizes.resolution)
            worst = min(worst, psnr(torch, colours[i], reference, (alpha > 0.01) | (alphas[i] > 0.01)))
        return worst >= GSPLAT_PSNR_MIN, f"gsplat {gsplat.__version__} vs reference splatter: worst view PSNR {worst:.1f} dB (needs {GSPLAT_PSNR_MIN:.0f})"

    def gaussian_views(self, extrinsics: Any, intrinsics: Any, g: Any) -> tuple:
        torch = self.torch
        from fast3d_gpu import bake

        try:
            import gsplat  # noqa: F401
            if self.device.type == "cuda":
                return bake.render_gaussians(g, extrinsics, intrinsics, self.sizes.resolution) + ("gsplat",)
        except ImportError:
            pass
        views = [reference_splat(torch, g, extrinsics[i], intrinsics[i], self.sizes.resolution) for i in range(extrinsics.shape[0])]
        return torch.stack([c for c, _ in views]), torch.stack([a for _, a in views]), "reference splatter"

    def bake_gaussians(self) -> tuple:
        torch = self.need_torch()
        from fast3d_gpu import bake

        s = self.sizes
        if getattr(self, "gaussian_samples", None) is None:
            g = self.gaussians()
            extrinsics, intrinsics = bake.orbit_cameras(torch, s.views, self.device)
            colours, alphas, renderer = self.gaussian_views(extrinsics, intrinsics, g)
            vertices, faces = sphere(torch, s.subdivisions, 0.4, self.device)
            v, f, uv = grid_atlas(torch, vertices, faces, s.texture)
            samples = bake.view_samples(v, f, uv, extrinsics, intrinsics, colours, alphas, s.texture)
            self.gaussian_samples = (samples, renderer)
        samples, renderer = self.gaussian_samples
        # The optimisation is what can differ between two runs of one seed; the views are made once.
        texture = bake.optimise_texture(samples, s.texture, s.steps, self.args.seed, self.device)
        return texture, samples, renderer

    def bake_gaussians_row(self) -> tuple:
        from fast3d_gpu import bake

        texture, samples, renderer = self.bake_gaussians()
        self.first_texture = texture
        l1, quality = bake.fidelity(texture, samples)
        return quality >= GAUSSIAN_PSNR_MIN, f"PSNR {quality:.1f} dB (needs {GAUSSIAN_PSNR_MIN:.0f}), L1 {l1:.4f}, Gaussians by {renderer}"

    def same_seed_row(self) -> tuple:
        first = getattr(self, "first_texture", None)
        if first is None:
            raise NotApplicable("the Gaussian bake did not run")
        second, _, _ = self.bake_gaussians()
        steps = float((first - second).abs().max()) * 255
        return steps <= SAME_SEED_MAX_STEPS, f"largest texel difference {steps:.2f} / 255 (at most {SAME_SEED_MAX_STEPS})"


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    table = Table()
    proof = Proof(args)
    run_check(table, "device", proof.device_row)
    run_check(table, "FA3 decision", proof.fa3_row)
    run_check(table, "raster", proof.raster_row)
    run_check(table, "bake mesh", proof.bake_mesh_row)
    run_check(table, "gsplat", proof.gsplat_row)
    run_check(table, "bake Gaussians", proof.bake_gaussians_row)
    run_check(table, "same seed", proof.same_seed_row)
    run_check(table, "time", lambda: time_verdict(time.monotonic() - started))
    print()
    print(table.render())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([r.__dict__ for r in table.rows], f, indent=2)
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
