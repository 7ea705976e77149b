"""The mesh path's GLB: TRELLIS's mesh and Gaussians baked into one textured mesh, with permissively licensed code
only. It keeps the steps and numbers of TRELLIS's own `to_glb` (microsoft/TRELLIS,
trellis/utils/postprocessing_utils.py) and replaces the two pieces whose licences forbid commercial use:

- the Gaussian rasteriser of the multiview renders (mip-splatting's diff-gaussian-rasterization) by gsplat
  (Apache-2.0) `rasterization`, with the same 2D filter: `eps2d` 0.1 with opacity compensation ("antialiased") is
  mip-splatting's `kernel_size` 0.1;
- nvdiffrast (rasterising, texture sampling) by raster.py (PyTorch) and `torch.nn.functional.grid_sample` over a
  mip pyramid of the texture, levels chosen per pixel from the texture footprint as nvdiffrast's mip filter does.

The steps, each separated by a cancellation check (`check()` raises to stop a job whose client has gone):
1. decimate to `1 - simplify` of the faces (pyvista's decimate);
2. remove faces no camera sees, and small holes: face visibility from 1000 views at 1024 px, a minimum cut between
   hidden and well-seen faces on the dual graph (igraph), removal of the cut pieces that are rarely seen and close a
   small loop, then pymeshfix closes the small boundaries;
3. UV atlas (xatlas);
4. the Gaussians rendered from 100 views at 1024 px (radius 2, 40 degrees, Hammersley directions);
5. the texture optimised against those renders: per step one view (from a generator seeded with the request's seed),
   L1 on the pixels both the Gaussians and the mesh cover plus 0.01 x total variation, Adam (betas 0.5, 0.9), 2,500
   steps, learning rate cosine from 1e-2 to 1e-5; texels the atlas leaves empty are inpainted (OpenCV, Telea);
6. Z-up to glTF's Y-up, `vertices @ [[1, 0, 0], [0, 0, -1], [0, 1, 0]]`, and a trimesh.Trimesh with a PBR material.

Fidelity (`BakeReport`): after the bake, the baked texture is sampled in every bake view and compared with the
Gaussians' render on the covered pixels, with the optimisation's own measure (mean absolute error, 0..1) and as PSNR
in dB. TRELLIS's bake minimises exactly that measure over exactly those views, so the two bakes are compared on it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import raster

log = logging.getLogger("fast3d.gpu")

# TRELLIS's numbers (to_glb, postprocess_mesh, bake_texture, render_multiview).
CAMERA_RADIUS = 2.0
CAMERA_FOV_DEGREES = 40.0
BAKE_VIEWS = 100
BAKE_RESOLUTION = 1024
HOLE_VIEWS = 1000
HOLE_RESOLUTION = 1024
HOLE_MAX_AREA = 0.04
BAKE_STEPS = 2500
TV_WEIGHT = 0.01
LR_START, LR_END = 1e-2, 1e-5
ADAM_BETAS = (0.5, 0.9)
INPAINT_RADIUS = 3
# The Gaussians' 2D filter (mip-splatting's kernel_size, TRELLIS's GaussianRenderer default).
FILTER_2D = 0.1
# diff-gaussian-rasterization culls Gaussians nearer than 0.2 and no farther ones; TRELLIS's near/far (0.8/1.6)
# only shape its projection matrix.
GAUSSIAN_NEAR = 0.2
# A pixel counts as the Gaussians' when their accumulated opacity reaches this.
ALPHA_COVERED = 0.5
# Views rasterised together (visibility) and rendered together (Gaussians).
RASTER_BATCH = 8
RENDER_BATCH = 10
CHECK_EVERY_STEPS = 50


def _no_check() -> None:
    return None


@dataclass
class BakeOptions:
    simplify: float = 0.95
    texture_size: int = 1024
    fill_holes: bool = True
    seed: int = 0
    # Lighter settings exist for the warm-up and the GPU proof script; requests use TRELLIS's.
    views: int = BAKE_VIEWS
    resolution: int = BAKE_RESOLUTION
    hole_views: int = HOLE_VIEWS
    hole_resolution: int = HOLE_RESOLUTION
    steps: int = BAKE_STEPS


@dataclass
class BakeReport:
    faces: int
    vertices: int
    texture_size: int
    # Mean absolute error (0..1 per channel) between the baked texture and the Gaussians over the bake views' covered
    # pixels, and the same as PSNR (dB); higher PSNR is closer.
    l1: float
    psnr: float


# --- cameras ------------------------------------------------------------------------------------------------------

def _van_der_corput(index: int) -> float:
    """The base-2 radical inverse of `index`: its binary digits mirrored behind the point."""
    value, weight = 0.0, 0.5
    while index:
        value += weight * (index & 1)
        index >>= 1
        weight *= 0.5
    return value


def sphere_directions(count: int) -> list:
    """(yaw, pitch) in radians of `count` directions spread evenly over the sphere (a Hammersley point set: the
    index share fixes the height, the radical inverse the turn)."""
    directions = []
    for i in range(count):
        pitch = math.acos(1.0 - 2.0 * i / count) - math.pi / 2
        yaw = 2.0 * math.pi * _van_der_corput(i)
        directions.append((yaw, pitch))
    return directions


def orbit_cameras(torch: Any, count: int, device: Any, radius: float = CAMERA_RADIUS,
                  fov_degrees: float = CAMERA_FOV_DEGREES) -> tuple:
    """(extrinsics (count, 4, 4) OpenCV world-to-camera, intrinsics (count, 3, 3) normalised) of cameras on a sphere
    of `radius` around the origin looking at it, +Z up (TRELLIS's internal frame)."""
    focal = 0.5 / math.tan(math.radians(fov_degrees) / 2)
    extrinsics = []
    for yaw, pitch in sphere_directions(count):
        eye = torch.tensor([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)]) * radius
        forward = -eye / eye.norm()
        up = torch.tensor([0.0, 0.0, 1.0])
        right = torch.linalg.cross(-up, forward)
        if right.norm() < 1e-6:  # looking straight up or down: any right angle will do
            right = torch.tensor([1.0, 0.0, 0.0])
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        rotation = torch.stack([right, down, forward])
        extrinsic = torch.eye(4)
        extrinsic[:3, :3] = rotation
        extrinsic[:3, 3] = -rotation @ eye
        extrinsics.append(extrinsic)
    intrinsic = torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]])
    extrinsics = torch.stack(extrinsics).to(device)
    return extrinsics, intrinsic.expand(count, 3, 3).contiguous().to(device)


# --- the Gaussians' renders (gsplat) ------------------------------------------------------------------------------

def render_gaussians(gaussian: Any, extrinsics: Any, intrinsics: Any, resolution: int, check: Callable[[], None] = _no_check) -> tuple:
    """(colours (V, H, W, 3) in 0..1 on black, alphas (V, H, W)) of TRELLIS's Gaussians seen by the cameras, as
    TRELLIS's GaussianRenderer renders them (SH degree 0, black background), through gsplat."""
    import torch
    from gsplat import rasterization

    means = gaussian.get_xyz
    features = gaussian.get_features  # (N, K, 3) SH coefficients
    degree = int(getattr(gaussian, "active_sh_degree", 0))
    colours, alphas = [], []
    with torch.no_grad():
        for first in range(0, extrinsics.shape[0], RENDER_BATCH):
            check()
            views = extrinsics[first:first + RENDER_BATCH]
            ks = intrinsics[first:first + RENDER_BATCH].clone()
            ks[:, :2] *= resolution
            rgb, alpha, _ = rasterization(
                means=means, quats=gaussian.get_rotation, scales=gaussian.get_scaling,
                opacities=gaussian.get_opacity.reshape(-1), colors=features, viewmats=views, Ks=ks,
                width=resolution, height=resolution, near_plane=GAUSSIAN_NEAR, sh_degree=degree,
                eps2d=FILTER_2D, rasterize_mode="antialiased",
                backgrounds=torch.zeros(views.shape[0], 3, device=means.device),
            )
            colours.append(rgb.clamp(0, 1))
            alphas.append(alpha[..., 0])
    return torch.cat(colours), torch.cat(alphas)


# --- mesh clean-up ------------------------------------------------------------------------------------------------

def decimate(vertices: Any, faces: Any, simplify: float) -> tuple:
    """pyvista's decimate (VTK's quadric decimation) removing the share `simplify` of the faces, as numpy arrays."""
    import numpy as np
    import pyvista

    cells = np.concatenate([np.full((faces.shape[0], 1), 3), faces], axis=1)
    mesh = pyvista.PolyData(vertices, cells).decimate(simplify)
    return np.asarray(mesh.points, dtype=np.float32), np.asarray(mesh.faces).reshape(-1, 4)[:, 1:].astype(np.int32)


def face_visibility(vertices: Any, faces: Any, views: int, resolution: int, check: Callable[[], None] = _no_check) -> Any:
    """The share of `views` orbit cameras in which each face covers at least one pixel (depth-tested)."""
    import torch

    extrinsics, intrinsics = orbit_cameras(torch, views, vertices.device)
    seen = torch.zeros(faces.shape[0], dtype=torch.int32, device=vertices.device)
    corners = faces.long()
    for first in range(0, views, RASTER_BATCH):
        check()
        screen, depth = raster.project(vertices, extrinsics[first:first + RASTER_BATCH],
                                       intrinsics[first:first + RASTER_BATCH], resolution, resolution)
        result = raster.rasterize(screen[:, corners], depth[:, corners], resolution, resolution)
        for buffer in result.face:
            visible = torch.unique(buffer[buffer >= 0])
            seen[visible] += 1
    return seen.float() / views


def remove_hidden_faces(vertices: Any, faces: Any, max_hole_area: float, max_hole_edges: int, views: int,
                        resolution: int, check: Callable[[], None] = _no_check) -> tuple:
    """TRELLIS's hole filling: cut away inner surfaces that no camera sees where they join the outside through a
    small opening, then close small boundaries (pymeshfix). Tensors in, tensors out (same device)."""
    import numpy as np
    import torch
    import igraph
    import utils3d
    from pymeshfix import _meshfix

    device = vertices.device
    visibility = face_visibility(vertices, faces, views, resolution, check)
    check()
    mesh_ops = utils3d.torch
    edges, face_edges, edge_degree = mesh_ops.compute_edges(faces)
    open_edges = torch.nonzero(edge_degree == 1).reshape(-1)
    outer = torch.zeros(faces.shape[0], dtype=torch.bool, device=device)
    for component in mesh_ops.compute_connected_components(faces, edges, face_edges):
        seen = visibility[component]
        threshold = min(max(seen.quantile(0.75).item(), 0.25), 0.5)
        outer[component] = seen > threshold
    hidden = torch.nonzero(visibility == 0).reshape(-1)
    if hidden.numel() == 0:
        return vertices, faces
    dual, dual_edge = mesh_ops.compute_dual_graph(face_edges)
    shared = edges[dual_edge]
    lengths = torch.norm(vertices[shared[:, 0]] - vertices[shared[:, 1]], dim=1)

    count = faces.shape[0]
    source, sink = count, count + 1
    outer_faces = torch.nonzero(outer).reshape(-1).tolist()
    hidden_faces = hidden.tolist()
    graph = igraph.Graph(n=count + 2, edges=dual.cpu().numpy().tolist()
                         + [(f, source) for f in hidden_faces] + [(f, sink) for f in outer_faces])
    capacity = np.concatenate([lengths.cpu().numpy(), np.ones(len(hidden_faces) + len(outer_faces))]) * 1000
    cut = graph.mincut(source, sink, capacity.tolist())
    check()
    removable = torch.tensor([v for v in cut.partition[0] if v < count], dtype=torch.long, device=device)
    keep_pieces = []
    for piece in mesh_ops.compute_connected_components(faces[removable]) if removable.numel() else []:
        if visibility[removable[piece]].median() > 0.25:
            continue
        piece_edges, uses = torch.unique(face_edges[removable[piece]], return_counts=True)
        rim = piece_edges[uses == 1]
        new_rim = rim[~torch.isin(rim, open_edges)]
        if new_rim.numel() and any(area > max_hole_area for area in _loop_areas(vertices, edges, new_rim, mesh_ops)):
            continue
        keep_pieces.append(piece)
    if keep_pieces:
        drop = removable[torch.cat(keep_pieces)]
        mask = torch.ones(count, dtype=torch.bool, device=device)
        mask[drop] = False
        faces, vertices = mesh_ops.remove_unreferenced_vertices(faces[mask], vertices)
    fixer = _meshfix.PyTMesh()
    fixer.load_array(vertices.cpu().numpy(), faces.cpu().numpy())
    fixer.fill_small_boundaries(nbe=max_hole_edges, refine=True)
    fixed_vertices, fixed_faces = fixer.return_arrays()
    return (torch.tensor(fixed_vertices, dtype=torch.float32, device=device),
            torch.tensor(fixed_faces, dtype=torch.int32, device=device))


def _loop_areas(vertices: Any, edges: Any, loop_edges: Any, mesh_ops: Any) -> list:
    """The area of each closed loop of `loop_edges`, as a fan of triangles from the loop's centre."""
    import torch

    areas = []
    for loop in mesh_ops.compute_edge_connected_components(edges[loop_edges]):
        ends = edges[loop_edges[loop]]
        centre = vertices[ends].mean(dim=1).mean(dim=0)
        a, b = vertices[ends[:, 0]] - centre, vertices[ends[:, 1]] - centre
        areas.append(float(torch.norm(torch.cross(a, b, dim=-1), dim=1).sum() * 0.5))
    return areas


def unwrap(vertices: Any, faces: Any) -> tuple:
    """xatlas's UV atlas: (vertices, faces, uvs) with seams split, as numpy arrays."""
    import xatlas

    mapping, indices, uvs = xatlas.parametrize(vertices, faces)
    return vertices[mapping], indices, uvs


# --- the texture --------------------------------------------------------------------------------------------------

@dataclass
class ViewSamples:
    """The pixels of one bake view that both the Gaussians and the mesh cover: where they look in the atlas (uv, and
    the mip level their footprint needs) and the colour the Gaussians show there."""

    uv: Any
    level: Any
    colour: Any


def view_samples(vertices: Any, faces: Any, uvs: Any, extrinsics: Any, intrinsics: Any, colours: Any, alphas: Any,
                 texture_size: int, check: Callable[[], None] = _no_check) -> list:
    import torch

    views, height, width = alphas.shape
    corners = faces.long()
    samples = []
    for first in range(0, views, RASTER_BATCH):
        check()
        screen, depth = raster.project(vertices, extrinsics[first:first + RASTER_BATCH],
                                       intrinsics[first:first + RASTER_BATCH], width, height)
        result = raster.rasterize(screen[:, corners], depth[:, corners], width, height)
        view, py, px, face = raster.covered_pixels(result)
        keep = alphas[first + view, py, px] >= ALPHA_COVERED
        view, py, px, face = view[keep], py[keep], px[keep], face[keep]
        cx, cy = px.float() + 0.5, py.float() + 0.5
        face_uv = uvs[corners[face]]  # (P, 3, 2)
        uv = _interpolate(result, view, face, cx, cy, face_uv)
        du = _interpolate(result, view, face, cx + 1.0, cy, face_uv) - uv
        dv = _interpolate(result, view, face, cx, cy + 1.0, face_uv) - uv
        footprint = torch.maximum(du.norm(dim=1), dv.norm(dim=1)) * texture_size
        level = torch.log2(footprint.clamp(min=1.0))
        colour = colours[first + view, py, px]
        for v in range(screen.shape[0]):
            chosen = view == v
            samples.append(ViewSamples(uv[chosen].contiguous(), level[chosen].contiguous(), colour[chosen].contiguous()))
    return samples


def _interpolate(result: Any, view: Any, face: Any, cx: Any, cy: Any, face_values: Any) -> Any:
    weights = raster.barycentrics(result, view, face, cx, cy)
    return (weights[:, :, None] * face_values).sum(dim=1)


def mip_levels(texture: Any, count: int) -> list:
    """The texture (1, 3, S, S) and `count - 1` halvings (2 x 2 means), differentiable."""
    import torch.nn.functional as F

    levels = [texture]
    for _ in range(count - 1):
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels


def sample_texture(levels: list, uv: Any, level: Any) -> Any:
    """(P, 3) colours of the mip pyramid at atlas points `uv` (P, 2) (v up, as the GLB's UVs), blending the two
    levels around each point's `level` (trilinear filtering)."""
    import torch
    import torch.nn.functional as F

    top = len(levels) - 1
    level = level.clamp(0, top)
    below = level.floor().long()
    blend = (level - below.float())[:, None]
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], dim=1)[None, None]  # row 0 of the image is v = 1
    out = torch.zeros(uv.shape[0], 3, device=uv.device, dtype=levels[0].dtype)
    for index in range(int(below.max().item()) + 1 if uv.shape[0] else 0):
        lower = below == index
        if not bool(lower.any()):
            continue
        g = grid[:, :, lower]
        here = F.grid_sample(levels[index], g, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
        above = F.grid_sample(levels[min(index + 1, top)], g, mode="bilinear", padding_mode="border",
                              align_corners=False)[0, :, 0].T
        out[lower] = here * (1 - blend[lower]) + above * blend[lower]
    return out


def optimise_texture(samples: list, texture_size: int, steps: int, seed: int, device: Any,
                     check: Callable[[], None] = _no_check) -> Any:
    """The texture (1, 3, S, S), 0..1, that best reproduces the views (TRELLIS's 'opt' bake)."""
    import torch

    texture = torch.nn.Parameter(torch.zeros((1, 3, texture_size, texture_size), dtype=torch.float32, device=device))
    optimiser = torch.optim.Adam([texture], betas=ADAM_BETAS, lr=LR_START)
    count = int(math.log2(texture_size)) + 1
    usable = [i for i, s in enumerate(samples) if s.uv.shape[0] > 0]
    if not usable:
        raise RuntimeError("no bake view sees both the mesh and the Gaussians: nothing to bake the texture from")
    pick = torch.Generator().manual_seed(seed)
    for step in range(steps):
        if step % CHECK_EVERY_STEPS == 0:
            check()
        chosen = samples[usable[int(torch.randint(len(usable), (1,), generator=pick))]]
        optimiser.zero_grad()
        rendered = sample_texture(mip_levels(texture, count), chosen.uv, chosen.level)
        loss = (rendered - chosen.colour).abs().mean() + TV_WEIGHT * _total_variation(texture)
        loss.backward()
        optimiser.step()
        optimiser.param_groups[0]["lr"] = LR_END + 0.5 * (LR_START - LR_END) * (1 + math.cos(math.pi * step / steps))
    return texture.detach().clamp(0, 1)


def _total_variation(texture: Any) -> Any:
    return ((texture[:, :, 1:, :] - texture[:, :, :-1, :]).abs().mean()
            + (texture[:, :, :, 1:] - texture[:, :, :, :-1]).abs().mean())


def atlas_coverage(faces: Any, uvs: Any, texture_size: int) -> Any:
    """(S, S) bool: the texels whose centre some UV triangle covers (image rows top down, v up)."""
    import torch

    corners = uvs[faces.long()]  # (F, 3, 2)
    screen = torch.stack([corners[..., 0] * texture_size, (1 - corners[..., 1]) * texture_size], dim=-1)
    return raster.rasterize(screen[None], None, texture_size, texture_size).covered[0]


def fidelity(texture: Any, samples: list) -> tuple:
    """(mean absolute error, PSNR in dB) of the texture against the Gaussians over every sample."""
    import torch

    count = int(math.log2(texture.shape[-1])) + 1
    levels = mip_levels(texture, count)
    total, squared, pixels = 0.0, 0.0, 0
    with torch.no_grad():
        for s in samples:
            if s.uv.shape[0] == 0:
                continue
            diff = sample_texture(levels, s.uv, s.level) - s.colour
            total += float(diff.abs().sum())
            squared += float((diff * diff).sum())
            pixels += diff.numel()
    if pixels == 0:
        return 1.0, 0.0
    mse = squared / pixels
    return total / pixels, (10 * math.log10(1.0 / mse) if mse > 0 else 99.0)


def finish_texture(texture: Any, covered: Any) -> Any:
    """The texture as an (S, S, 3) uint8 image with the texels outside the atlas inpainted."""
    import cv2
    import numpy as np

    image = (texture[0].permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
    holes = (~covered).cpu().numpy().astype(np.uint8)
    return cv2.inpaint(image, holes, INPAINT_RADIUS, cv2.INPAINT_TELEA)


# --- the whole bake -----------------------------------------------------------------------------------------------

def to_glb(gaussian: Any, mesh: Any, options: BakeOptions, check: Callable[[], None] = _no_check) -> tuple:
    """(trimesh.Trimesh in glTF's frame, BakeReport) of TRELLIS's Gaussians and extracted mesh."""
    import numpy as np
    import torch
    import trimesh
    import trimesh.visual
    from PIL import Image

    device = mesh.vertices.device
    vertices = mesh.vertices.detach().float().cpu().numpy()
    faces = mesh.faces.detach().cpu().numpy().astype(np.int32)
    if options.simplify > 0:
        vertices, faces = decimate(vertices, faces, options.simplify)
    check()
    if options.fill_holes:
        v, f = remove_hidden_faces(torch.tensor(vertices, device=device), torch.tensor(faces, device=device),
                                   HOLE_MAX_AREA, int(250 * math.sqrt(1 - options.simplify)), options.hole_views,
                                   options.hole_resolution, check)
        vertices, faces = v.cpu().numpy(), f.cpu().numpy()
    check()
    vertices, faces, uvs = unwrap(vertices, faces)
    check()

    extrinsics, intrinsics = orbit_cameras(torch, options.views, device)
    colours, alphas = render_gaussians(gaussian, extrinsics, intrinsics, options.resolution, check)
    vertex_t = torch.tensor(vertices, dtype=torch.float32, device=device)
    face_t = torch.tensor(faces.astype(np.int64), device=device)
    uv_t = torch.tensor(uvs, dtype=torch.float32, device=device)
    samples = view_samples(vertex_t, face_t, uv_t, extrinsics, intrinsics, colours, alphas, options.texture_size, check)
    del colours, alphas
    with torch.enable_grad():
        texture = optimise_texture(samples, options.texture_size, options.steps, options.seed, device, check)
    check()
    l1, psnr = fidelity(texture, samples)
    image = finish_texture(texture, atlas_coverage(face_t, uv_t, options.texture_size))

    y_up = vertices @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float32)
    material = trimesh.visual.material.PBRMaterial(
        roughnessFactor=1.0, baseColorTexture=Image.fromarray(image),
        baseColorFactor=np.array([255, 255, 255, 255], dtype=np.uint8))
    result = trimesh.Trimesh(y_up, faces, visual=trimesh.visual.TextureVisuals(uv=uvs, material=material), process=False)
    report = BakeReport(faces=int(faces.shape[0]), vertices=int(vertices.shape[0]), texture_size=options.texture_size,
                        l1=l1, psnr=psnr)
    log.info("bake: %d faces, %d px texture, fidelity to the Gaussians L1 %.4f, PSNR %.1f dB",
             report.faces, report.texture_size, report.l1, report.psnr)
    return result, report
