"""The real provider: FLUX.1-schnell through diffusers and TRELLIS-image-large, loaded once, on one CUDA GPU.

Nothing here is imported at module level beyond the standard library: `load()` imports torch, diffusers and
trellis, and reports (through `status()`) what is missing instead of raising, so the worker keeps serving
/health and says why it is not ready.

APIs followed:
- diffusers (huggingface/diffusers, src/diffusers/pipelines/flux/pipeline_flux.py)
  `FluxPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)` and
  `pipe(prompt=..., num_inference_steps=..., guidance_scale=0.0, height=..., width=..., max_sequence_length=256,
  generator=...).images[0]` (FLUX.1-schnell model card and diffusers Flux docs); `enable_model_cpu_offload()` /
  `enable_sequential_cpu_offload()` for cards with less memory.
- TRELLIS (microsoft/TRELLIS, trellis/pipelines/trellis_image_to_3d.py): `TrellisImageTo3DPipeline
  .from_pretrained(folder)` on a Gaussian-only folder (hub.gaussian_only_folder), `.cuda()` (returns None),
  `.run(image, seed=..., formats=["gaussian"],
  preprocess_image=False, sparse_structure_sampler_params={"steps", "cfg_strength"},
  slat_sampler_params={"steps", "cfg_strength"})["gaussian"][0]`.
- The PLY values are those of trellis/representations/gaussian/gaussian_model.py `save_ply(path,
  transform=None)`: `get_xyz`, `_features_dc` (N x 1 x 3), logit of `get_opacity`, log of `get_scaling`,
  `_rotation + rots_bias` (w, x, y, z, unnormalised). They are gathered here directly with numpy, because
  save_ply goes through a file and a per-row Python conversion that costs seconds at a million Gaussians.
  One difference: the opacity is clamped to [OPACITY_EPS, 1 - OPACITY_EPS] before the logit, because a
  saturated opacity would give +-inf and the service drops non-finite Gaussians.
- The run is TRELLIS's `run()` taken apart (trellis_image_to_3d.py: `get_cond([image])`, `torch.manual_seed(seed)`,
  `sample_sparse_structure(cond, 1, params)`, `sample_slat(cond, coords, params)`, `decode_slat(slat, formats)`),
  so a cancelled job (CancelToken) stops between stages.
- Meshes (TorchOptions.mesh, `--mesh`): the folder keeps `slat_decoder_mesh`, a mesh request decodes
  `formats=["gaussian", "mesh"]` and bakes with fast3d_gpu/bake.py `to_glb` (TRELLIS's to_glb steps with
  permissively licensed code; gradients are needed, so it runs outside no_grad), exported with trimesh's
  `.export(file_type="glb")`. A Gaussian-only request never decodes or bakes a mesh.
- Models come from hub snapshots pinned by commit (hub.py; the defaults below); TRELLIS's folder is checked file by
  file and each model loaded on its own (load_trellis_pipeline), so the first failure is the one reported; the
  imports are those of trellis_imports.py.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import determinism
from .attention import apply_fa3_guard
from .hub import (DINOV2_HUB_ENTRY, FLUX_FILES, FLUX_REVISION, TRELLIS_FILES, TRELLIS_MESH_FILES, TRELLIS_REVISION, HubError,
                  Snapshot, fetch_snapshot, gaussian_only_folder, is_local, link_torch_hub_repo, missing_model_files)
from .memory import resolve_offload
from .ply import encode_ply
from .provider import (BadInput, ImageRequest, MeshOptions, ModelStatus, OutOfMemory, Provider, ProviderStatus, SplatRequest,
                       warm_up_with_retry)
from .trellis_imports import import_worker_modules

log = logging.getLogger("fast3d.gpu")

TRELLIS_INPUT_SIDE = 518
# float32 keeps 1 - 1e-6 apart from 1: logits stay within about +-13.8.
OPACITY_EPS = 1e-6
INSTALL_HINT = "install the worker's Python environment (docker/Dockerfile, or docs/gpu-worker.md 'Python environment')"
# The warm-up's mesh: small and quick, through every step of the bake.
WARM_UP_MESH = MeshOptions(simplify=0.95, texture_size=256)
WARM_UP_BAKE = {"views": 8, "resolution": 256, "hole_views": 50, "hole_resolution": 256, "steps": 50}


def _no_check() -> None:
    return None


@dataclass
class TorchOptions:
    flux_model: str = "black-forest-labs/FLUX.1-schnell"
    trellis_model: str = "microsoft/TRELLIS-image-large"
    # Hub revisions (40-hex commits) the image loads (hub.py says where each comes from); empty: the one recorded in
    # revisions_file, else the current one, recorded.
    flux_revision: str = FLUX_REVISION
    trellis_revision: str = TRELLIS_REVISION
    revisions_file: str = ""
    # Where the Gaussian-only TRELLIS folder is written (links into the snapshot).
    state_dir: str = ""
    # A checkout of facebookresearch/dinov2 at a pinned commit (the image has one); empty: torch.hub's own.
    dinov2_dir: str = ""
    # "auto" picks from the GPU's memory (memory.py); "none" keeps FLUX on the GPU (about 33 GB in bf16);
    # "model" moves one sub-model at a time to the GPU; "sequential" streams layer by layer (least memory, slowest).
    flux_offload: str = "auto"
    max_sequence_length: int = 256
    attention_backend: str = "xformers"
    # "auto" benchmarks spconv's kernels once, then reuses the fastest: right for a long-running server
    # (TRELLIS README: "native" is for single runs).
    spconv_algo: str = "auto"
    warmup: bool = True
    load_flux: bool = True
    load_trellis: bool = True
    # Load TRELLIS's mesh decoder and to_glb's dependencies, so /v1/image-to-3d can answer mesh requests.
    mesh: bool = False


class TorchProvider(Provider):
    name = "torch"

    def __init__(self, options: Optional[TorchOptions] = None):
        self.options = options or TorchOptions()
        self._state = "loading"
        self._error: Optional[str] = None
        self._lock = threading.Lock()
        self._torch: Any = None
        self._flux: Any = None
        self._trellis: Any = None
        self._device_name: Optional[str] = None
        self._flux_offload: Optional[str] = None
        self._revisions: dict = {}
        self._to_glb: Optional[Callable[..., Any]] = None
        self._bake_options: Any = None
        self.attention_decision: Optional[str] = None

    @property
    def supports_mesh(self) -> bool:  # type: ignore[override]
        return self._trellis is not None and self._to_glb is not None

    # --- loading ------------------------------------------------------------------------------------------

    def mark_failed(self, message: str) -> None:
        with self._lock:
            self._state, self._error = "failed", message

    def load(self) -> None:
        determinism.prepare_environment()
        o = self.options
        try:
            modules = import_worker_modules(o.attention_backend, o.spconv_algo, o.load_flux, o.load_trellis,
                                            o.load_trellis and o.mesh)
        except ImportError as err:
            if getattr(err, "name", None) == "torch":
                self.mark_failed(f"torch is not installed for {sys.executable} ({err}); {INSTALL_HINT}")
            else:
                self.mark_failed(f"a model package is missing for {sys.executable}: {err}; {INSTALL_HINT}")
            return
        torch = modules["torch"]
        self._torch = torch
        if not torch.cuda.is_available():
            self.mark_failed(f"torch {torch.__version__} sees no CUDA device; the worker needs an NVIDIA GPU with CUDA")
            return
        self._device_name = torch.cuda.get_device_name(0)
        determinism.set_deterministic_flags(torch)
        download = modules["huggingface_hub"].snapshot_download
        try:
            if o.load_flux:
                total = torch.cuda.get_device_properties(0).total_memory
                self._flux_offload = resolve_offload(o.flux_offload, total)
                folder = self._snapshot(o.flux_model, o.flux_revision, download, "FLUX.1-schnell", FLUX_FILES)
                self._flux = self._load_flux(modules["FluxPipeline"], torch, folder)
            if o.load_trellis:
                if o.attention_backend == "xformers":
                    self.attention_decision = apply_fa3_guard(torch, modules.get("fmha"))
                    log.info("attention: %s", self.attention_decision)
                if o.dinov2_dir:
                    link_torch_hub_repo(torch.hub.get_dir(), DINOV2_HUB_ENTRY, o.dinov2_dir)
                files = TRELLIS_MESH_FILES if o.mesh else TRELLIS_FILES
                folder = self._snapshot(o.trellis_model, o.trellis_revision, download, "TRELLIS-image-large", files)
                self._trellis = self._load_trellis(modules, folder)
                self._to_glb = modules.get("to_glb")
                self._bake_options = modules.get("BakeOptions")
            if o.warmup:
                failure = warm_up_with_retry(self._warm_up, self._free, lambda err: is_out_of_memory(self._torch, err))
                if failure:
                    self.mark_failed(failure)
                    return
        except HubError as err:
            self.mark_failed(str(err))
            return
        except ImportError as err:
            self.mark_failed(f"a model package is missing for {sys.executable}: {err}; {INSTALL_HINT}")
            return
        except Exception as err:  # weights missing, no disk, driver mismatch: say so, stay up
            log.exception("model loading failed")
            self.mark_failed(f"model loading failed: {type(err).__name__}: {err}")
            return
        with self._lock:
            self._state = "ready"

    def _snapshot(self, model: str, revision: str, download: Callable[..., str], label: str, files: dict) -> str:
        """A local folder of `model`: itself when it is one, else the pinned hub snapshot."""
        if is_local(model):
            self._revisions[model] = "local folder"
            return model
        snapshot: Snapshot = fetch_snapshot(model, revision or None, self.options.revisions_file or None, download, label, files)
        self._revisions[model] = snapshot.revision
        log.info("%s: %s at revision %s", label, model, snapshot.revision)
        return snapshot.path

    def _load_flux(self, flux_pipeline: Any, torch: Any, folder: str) -> Any:
        log.info("loading FLUX from %s (offload: %s)", folder, self._flux_offload)
        pipe = flux_pipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
        if self._flux_offload == "model":
            pipe.enable_model_cpu_offload()
        elif self._flux_offload == "sequential":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to("cuda")
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _load_trellis(self, modules: dict, folder: str) -> Any:
        import tempfile

        state = self.options.state_dir or tempfile.mkdtemp(prefix="fast3d-trellis-")
        mesh = self.options.mesh
        gaussian_only = gaussian_only_folder(folder, os.path.join(state, "trellis-gaussian-mesh" if mesh else "trellis-gaussian"), mesh=mesh)
        log.info("loading TRELLIS from %s (%s)", gaussian_only, "Gaussian and mesh decoders" if mesh else "Gaussian decoder only")
        pipeline = load_trellis_pipeline(modules, gaussian_only)
        pipeline.cuda()
        return pipeline

    def _warm_up(self) -> None:
        """One small run of each model, so the first request does not pay for kernel selection; with meshes, one
        small bake too, so a broken mesh stack fails the start rather than the first mesh request."""
        log.info("warming up%s", " (with a small mesh bake)" if self.supports_mesh else "")
        if self._flux is not None:
            png = self._generate_image(ImageRequest("a red apple on a white background", 512, 512, 1, 0))
        else:
            png = None
        if self._trellis is not None:
            from PIL import Image

            image = Image.new("RGBA", (TRELLIS_INPUT_SIDE, TRELLIS_INPUT_SIDE), (0, 0, 0, 0))
            if png is not None:
                image = Image.open(io.BytesIO(png)).convert("RGBA")
            else:
                image.paste((200, 60, 60, 255), (160, 160, 360, 360))
            mesh = WARM_UP_MESH if self.supports_mesh else None
            self._run_trellis(image, seed=0, ss=(4, 7.5), slat=(4, 3.0), mesh=mesh, light_bake=True)
        self._free()

    # --- status -------------------------------------------------------------------------------------------

    def status(self) -> ProviderStatus:
        with self._lock:
            state, error = self._state, self._error
        total = used = None
        torch = self._torch
        if torch is not None and self._device_name is not None:
            try:
                free, total = torch.cuda.mem_get_info()
                used = total - free
            except Exception:  # the driver can refuse while another thread allocates; report nothing then
                pass
        return ProviderStatus(
            state=state,
            error=error,
            device=f"cuda:0 ({self._device_name})" if self._device_name else None,
            vram_total=total,
            vram_used=used,
            flux_offload=self._flux_offload,
            models=[
                ModelStatus("text-to-image", self.options.flux_model, self._flux is not None and state == "ready",
                            self._revisions.get(self.options.flux_model)),
                ModelStatus("image-to-3d", self.options.trellis_model, self._trellis is not None and state == "ready",
                            self._revisions.get(self.options.trellis_model)),
            ],
        )

    # --- inference ----------------------------------------------------------------------------------------

    def generate_image(self, request: ImageRequest) -> bytes:
        if self._flux is None:
            raise BadInput("this worker was started without the text-to-image model")
        return self._guard("text-to-image", lambda: self._generate_image(request))

    def image_to_3d(self, request: SplatRequest) -> bytes:
        image = self._trellis_input(request)
        return self._guard("image-to-3d", lambda: self._run_trellis(image, **_sampling(request), check=request.check))

    def image_to_3d_mesh(self, request: SplatRequest, mesh: MeshOptions) -> tuple:
        if not self.supports_mesh:
            raise BadInput("this worker makes no meshes: start it with --mesh (FAST3D_WORKER_MESH=1)")
        image = self._trellis_input(request)
        return self._guard("image-to-3d with a mesh",
                           lambda: self._run_trellis(image, **_sampling(request), mesh=mesh, check=request.check))

    def _trellis_input(self, request: SplatRequest) -> Any:
        if self._trellis is None:
            raise BadInput("this worker was started without the image-to-3D model")
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(request.png))
            image.load()
        except (UnidentifiedImageError, OSError) as err:
            raise BadInput(f"image could not be decoded: {err}") from None
        return image.convert("RGBA")

    def _generate_image(self, request: ImageRequest) -> bytes:
        torch = self._torch
        determinism.seed_everything(torch, request.seed)
        # A CPU generator gives the same noise whatever the offload mode; diffusers moves the latents.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        with torch.no_grad():
            image = self._flux(
                prompt=request.prompt,
                num_inference_steps=request.steps,
                guidance_scale=0.0,
                height=request.height,
                width=request.width,
                max_sequence_length=self.options.max_sequence_length,
                generator=generator,
            ).images[0]
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        return out.getvalue()

    def _run_trellis(self, image: Any, seed: int, ss: tuple, slat: tuple, mesh: Optional[MeshOptions] = None,
                     check: Callable[[], None] = _no_check, light_bake: bool = False) -> Any:
        """The PLY; with `mesh`, (PLY, GLB) from the same run. `check` raises to cancel, between stages."""
        torch = self._torch
        pipeline = self._trellis
        conditioning = premultiplied_rgb(image)
        formats = ["gaussian", "mesh"] if mesh is not None else ["gaussian"]
        determinism.seed_everything(torch, seed)
        # no_grad, as TRELLIS's own run() uses: sparse-conv libraries do not all accept inference-mode tensors.
        with torch.no_grad():
            check()
            cond = pipeline.get_cond([conditioning])
            torch.manual_seed(seed)  # where run() seeds: after the image encoder, before the first noise
            check()
            coords = pipeline.sample_sparse_structure(cond, 1, {"steps": int(ss[0]), "cfg_strength": float(ss[1])})
            check()
            latent = pipeline.sample_slat(cond, coords, {"steps": int(slat[0]), "cfg_strength": float(slat[1])})
            check()
            outputs = pipeline.decode_slat(latent, formats)
            gaussian = outputs["gaussian"][0]
            ply = gaussian_ply(torch, gaussian)
        if mesh is None:
            return ply
        check()
        return ply, self._bake_glb(gaussian, outputs["mesh"][0], mesh, seed, check, light_bake)

    def _bake_glb(self, gaussian: Any, extracted: Any, mesh: MeshOptions, seed: int, check: Callable[[], None],
                  light: bool = False) -> bytes:
        """The licence-clean bake (bake.py), then the GLB bytes. Outside no_grad: the texture bake optimises."""
        if not getattr(extracted, "success", True):
            raise RuntimeError("TRELLIS extracted an empty mesh from this image (no surface in the structured latent)")
        options = self._bake_options(simplify=float(mesh.simplify), texture_size=int(mesh.texture_size), seed=seed,
                                     **(WARM_UP_BAKE if light else {}))
        baked, _report = self._to_glb(gaussian, extracted, options, check)
        glb = baked.export(file_type="glb")
        return bytes(glb)

    def _guard(self, what: str, work: Callable[[], bytes]) -> bytes:
        """Runs GPU work; a CUDA out-of-memory frees the cache and becomes OutOfMemory (HTTP 503)."""
        oom_message = None
        try:
            return work()
        except Exception as err:
            if not is_out_of_memory(self._torch, err):
                raise
            oom_message = str(err).splitlines()[0] if str(err) else type(err).__name__
        # Outside the except block: the traceback (and the tensors its frames hold) is gone by now.
        self._free()
        log.error("CUDA out of memory during %s; cache freed: %s", what, oom_message)
        raise OutOfMemory(
            f"CUDA out of memory during {what} ({oom_message}); memory was freed and the worker is up: "
            "retry, or lower the image size, steps or concurrency"
        )

    def _free(self) -> None:
        gc.collect()
        if self._torch is not None and self._device_name is not None:
            self._torch.cuda.empty_cache()


def is_out_of_memory(torch: Any, err: BaseException) -> bool:
    kind = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch is not None else None
    if kind is not None and isinstance(err, kind):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def premultiplied_rgb(image: Any) -> Any:
    """What TRELLIS conditions on: the RGBA image premultiplied onto black, 518 x 518 (Lanczos), RGB. This is
    the tail of TRELLIS's own preprocess_image; the framing (crop, margin) is done by the service's matting."""
    import numpy as np
    from PIL import Image

    if image.size != (TRELLIS_INPUT_SIDE, TRELLIS_INPUT_SIDE):
        image = image.resize((TRELLIS_INPUT_SIDE, TRELLIS_INPUT_SIDE), Image.Resampling.LANCZOS)
    rgba = np.asarray(image, dtype=np.float32) / 255.0
    rgb = rgba[:, :, :3] * rgba[:, :, 3:4]
    return Image.fromarray((rgb * 255).astype(np.uint8))


def gaussian_ply(torch: Any, gaussian: Any) -> bytes:
    """The Gaussians as PLY bytes, with the values save_ply(transform=None) writes (internal frame)."""
    xyz = gaussian.get_xyz
    f_dc = gaussian._features_dc.transpose(1, 2).flatten(start_dim=1)
    opacity = opacity_logits(torch, gaussian.get_opacity)
    scale = torch.log(gaussian.get_scaling)
    rotation = gaussian._rotation + gaussian.rots_bias[None, :]
    columns = [c.float() for c in (xyz, f_dc, opacity, scale, rotation)]
    table = torch.cat(columns, dim=1).contiguous().cpu().numpy()
    count = table.shape[0]
    return encode_ply(count, table.astype("<f4", copy=False).tobytes())


def opacity_logits(torch: Any, opacity: Any) -> Any:
    """The logit the PLY stores, finite even where the activation saturated to exactly 0 or 1."""
    return torch.logit(opacity.float().clamp(OPACITY_EPS, 1.0 - OPACITY_EPS))


def _sampling(request: SplatRequest) -> dict:
    """The seed and both samplers' steps and guidance of a request, as _run_trellis takes them."""
    return {
        "seed": request.seed,
        "ss": (request.sparse_structure_steps, request.sparse_structure_cfg),
        "slat": (request.slat_steps, request.slat_cfg),
    }


class TrellisLoadError(RuntimeError):
    """A TRELLIS model of the local folder could not be loaded; the message names it and the first cause."""


def load_trellis_pipeline(modules: dict, folder: str) -> Any:
    """TrellisImageTo3DPipeline.from_pretrained (trellis/pipelines/base.py and trellis_image_to_3d.py) without its
    fallbacks: the folder's files are checked first and every missing one named, and each model is loaded once from
    the folder, its first exception reported with the model's name. TRELLIS's own loader catches any failure of a
    local model with a bare except and retries the path as a hub repository, unpinned, which hides an out-of-memory
    or a missing file behind a 'repository not found'."""
    import json

    missing = missing_model_files(folder)
    if missing:
        raise HubError(f"TRELLIS-image-large: {folder} lacks {', '.join(missing)} (an incomplete download or a "
                       "checkpoint left out by the download patterns)")
    with open(os.path.join(folder, "pipeline.json"), encoding="utf-8") as f:
        args = json.load(f)["args"]
    loaded = {}
    for name, relative in args["models"].items():
        path = f"{folder}/{relative}"
        try:
            loaded[name] = modules["trellis_models"].from_pretrained(path)
        except Exception as err:
            raise TrellisLoadError(f"TRELLIS model {name} ({path}) failed to load: {type(err).__name__}: {err}") from err
    samplers = modules["trellis_samplers"]
    pipeline = modules["TrellisImageTo3DPipeline"](
        models=loaded,
        sparse_structure_sampler=getattr(samplers, args["sparse_structure_sampler"]["name"])(**args["sparse_structure_sampler"]["args"]),
        slat_sampler=getattr(samplers, args["slat_sampler"]["name"])(**args["slat_sampler"]["args"]),
        slat_normalization=args["slat_normalization"],
        image_cond_model=args["image_cond_model"],
    )
    pipeline.sparse_structure_sampler_params = args["sparse_structure_sampler"]["params"]
    pipeline.slat_sampler_params = args["slat_sampler"]["params"]
    pipeline._pretrained_args = args
    return pipeline
