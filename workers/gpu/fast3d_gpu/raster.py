"""Triangle rasterisation in plain PyTorch, on any device: which face covers each pixel, and the perspective-correct
barycentric coordinates there. The mesh bake (bake.py) uses it for face visibility, for the texture coordinates seen
in each view and for the texels the UV atlas covers. It replaces a CUDA rasteriser whose licence forbids commercial
use; being written against torch alone it also runs (slowly) on a CPU, where the tests and the GPU proof script's
CPU mode exercise it.

Conventions: pixel (x, y) has its centre at (x + 0.5, y + 0.5), x to the right, y down (OpenCV's image frame).
A pixel belongs to a triangle when its centre lies inside or on an edge of it; where several triangles cover a
pixel the nearest wins, ties going to the lower face index. The depth test packs (depth, face) into one int64 and
takes the minimum with scatter_reduce, which is order-independent: the same mesh gives the same face buffer, bit
for bit, on every run (no atomic adds of floats).

Work is bounded: each triangle's candidate pixels are its clipped bounding box, enumerated in chunks of at most
`budget` pixels, so memory stays near budget x 40 bytes whatever the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# Candidate pixels evaluated at once (memory: about 40 bytes each).
DEFAULT_BUDGET = 1 << 22
EMPTY = -1
# Faces closer than this (camera-space depth) are dropped rather than clipped: the bake's cameras sit two units from
# an object inside the unit cube, so no face ever reaches it.
NEAR = 1e-4


@dataclass
class Raster:
    """`face` (B, H, W) int64: the visible face per pixel, EMPTY where none. The inputs are kept to interpolate."""

    face: Any
    screen: Any
    depth: Optional[Any]

    @property
    def covered(self) -> Any:
        return self.face >= 0


def rasterize(screen: Any, depth: Optional[Any], width: int, height: int, budget: int = DEFAULT_BUDGET) -> Raster:
    """Rasterises B views of F triangles each. `screen` (B, F, 3, 2): the corners in pixels; `depth` (B, F, 3): their
    camera-space depth (positive in front), or None for flat triangles (a UV atlas), where the lower face wins."""
    import torch

    if screen.dim() != 4 or screen.shape[-2:] != (3, 2):
        raise ValueError(f"screen must be (B, F, 3, 2), not {tuple(screen.shape)}")
    views, faces = screen.shape[:2]
    device = screen.device
    screen = screen.float()
    x, y = screen[..., 0], screen[..., 1]
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    usable = area.abs() > 1e-12
    if depth is not None:
        depth = depth.float()
        usable &= (depth > NEAR).all(dim=-1)
    x_lo = torch.ceil(x.min(dim=-1).values - 0.5).clamp(min=0)
    x_hi = torch.floor(x.max(dim=-1).values - 0.5).clamp(max=width - 1)
    y_lo = torch.ceil(y.min(dim=-1).values - 0.5).clamp(min=0)
    y_hi = torch.floor(y.max(dim=-1).values - 0.5).clamp(max=height - 1)
    span_x = (x_hi - x_lo + 1).clamp(min=0).long()
    span_y = (y_hi - y_lo + 1).clamp(min=0).long()
    counts = (span_x * span_y * usable.long()).reshape(-1)
    live = torch.nonzero(counts > 0).squeeze(1)

    unset = torch.iinfo(torch.int64).max
    best = torch.full((views * height * width,), unset, dtype=torch.int64, device=device)
    flat_screen = screen.reshape(-1, 3, 2)
    flat_area = area.reshape(-1)
    flat_depth = depth.reshape(-1, 3) if depth is not None else None
    x_lo, y_lo, span_x = x_lo.reshape(-1).long(), y_lo.reshape(-1).long(), span_x.reshape(-1)
    live_counts = counts[live]
    ends = torch.cumsum(live_counts, dim=0)
    start = 0
    while start < live.numel():
        # The largest run of triangles whose candidates fit the budget (at least one triangle).
        done = int(ends[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(ends, torch.tensor(done + budget, device=device), right=True))
        stop = max(stop, start + 1)
        prims = live[start:stop]
        sizes = live_counts[start:stop]
        owner = torch.repeat_interleave(torch.arange(prims.numel(), device=device), sizes)
        offsets = torch.cumsum(sizes, dim=0) - sizes
        local = torch.arange(owner.numel(), device=device) - offsets[owner]
        prim = prims[owner]
        px = x_lo[prim] + local % span_x[prim]
        py = y_lo[prim] + local // span_x[prim]
        weights = _edge_weights(flat_screen[prim], flat_area[prim], px.float() + 0.5, py.float() + 0.5)
        inside = (weights >= 0).all(dim=1)
        prim, px, py, weights = prim[inside], px[inside], py[inside], weights[inside]
        face = prim % faces
        view = prim // faces
        if flat_depth is not None:
            z = 1.0 / (weights / flat_depth[prim]).sum(dim=1)
            key = (z.contiguous().view(torch.int32).long() << 32) | face
        else:
            key = face
        best.scatter_reduce_(0, (view * height + py) * width + px, key, reduce="amin")
        start = stop
    face_buffer = torch.where(best == unset, torch.full_like(best, EMPTY), best & 0xFFFFFFFF)
    return Raster(face_buffer.reshape(views, height, width), screen, depth)


def _edge_weights(corners: Any, area: Any, cx: Any, cy: Any) -> Any:
    """(N, 3) screen-space barycentric weights of points (cx, cy) in triangles `corners` (N, 3, 2) of signed double
    area `area`: each corner's weight is the area of the triangle the point makes with the other two corners."""
    import torch

    x0, y0 = corners[:, 0, 0], corners[:, 0, 1]
    x1, y1 = corners[:, 1, 0], corners[:, 1, 1]
    x2, y2 = corners[:, 2, 0], corners[:, 2, 1]
    w0 = ((x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)) / area
    w1 = ((x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)) / area
    return torch.stack([w0, w1, 1.0 - w0 - w1], dim=1)


def covered_pixels(raster: Raster) -> tuple:
    """(view, y, x, face) index tensors of every covered pixel, in buffer order."""
    import torch

    view, py, px = torch.nonzero(raster.covered, as_tuple=True)
    return view, py, px, raster.face[view, py, px]


def barycentrics(raster: Raster, view: Any, face: Any, cx: Any, cy: Any) -> Any:
    """(N, 3) perspective-correct barycentric coordinates at points (cx, cy) (pixels, not centres) of `face` in
    `view`. Points outside the face extrapolate its plane, which is what the texture footprint needs."""
    faces = raster.screen.shape[1]
    prim = view * faces + face
    corners = raster.screen.reshape(-1, 3, 2)[prim]
    x, y = corners[..., 0], corners[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    weights = _edge_weights(corners, area, cx, cy)
    if raster.depth is None:
        return weights
    corrected = weights / raster.depth.reshape(-1, 3)[prim]
    return corrected / corrected.sum(dim=1, keepdim=True)


def project(vertices: Any, extrinsics: Any, intrinsics: Any, width: int, height: int) -> tuple:
    """Pixel coordinates (B, V, 2) and depths (B, V) of world points `vertices` (V, 3) seen by B OpenCV cameras:
    `extrinsics` (B, 4, 4) world to camera, `intrinsics` (B, 3, 3) normalised (focal and centre in image sizes)."""
    import torch

    homogeneous = torch.cat([vertices, torch.ones_like(vertices[:, :1])], dim=1)
    camera = torch.einsum("bij,vj->bvi", extrinsics, homogeneous)[..., :3]
    z = camera[..., 2]
    safe = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    u = (intrinsics[:, None, 0, 0] * camera[..., 0] / safe + intrinsics[:, None, 0, 2]) * width
    v = (intrinsics[:, None, 1, 1] * camera[..., 1] / safe + intrinsics[:, None, 1, 2]) * height
    return torch.stack([u, v], dim=-1), z
