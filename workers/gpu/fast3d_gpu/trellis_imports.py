"""The imports the real provider needs, in one place: `worker.py --check-imports` and the image's build-time
check run exactly this, so a broken environment fails the build instead of a GPU box.

`from trellis.pipelines import TrellisImageTo3DPipeline` runs trellis/__init__.py, which imports every
pipeline and representation (microsoft/TRELLIS, trellis/__init__.py):
- trellis/pipelines/trellis_text_to_3d.py imports open3d (used by the text-to-3D pipeline only);
- trellis/representations/mesh/cube2mesh.py imports FlexiCubes, whose module imports
  `kaolin.utils.testing.check_tensor` (used by mesh extraction only).
Neither package is installed (open3d alone is hundreds of MB and kaolin has no wheel for every torch/CUDA
pair). Where one is absent, a stand-in module takes its place for the import; any use of it raises an error
that names the package, so no code path can run on a stand-in unnoticed. With meshes on, kaolin's stand-in is
a working check_tensor instead (below).

Meshes (`--mesh`): TRELLIS's mesh decoder runs FlexiCubes, whose only use of kaolin is the argument check
`kaolin.utils.testing.check_tensor(tensor, shape, dtype, device, throw)` in its asserts. Without kaolin
installed (its wheels exist for some torch/CUDA pairs only), a working check_tensor of the same contract takes
its place (KAOLIN_CHECK_TENSOR); a real kaolin always wins. The GLB is baked by fast3d_gpu/bake.py, not by
TRELLIS's to_glb (trellis/utils/postprocessing_utils.py), whose nvdiffrast and mip-splatting Gaussian rasteriser
forbid commercial use: the bake's packages (gsplat, xatlas, pyvista, pymeshfix, igraph, trimesh, cv2, utils3d's
mesh helpers) are imported here, at load, only when meshes are on, so a missing one fails the start by name rather
than the first job. After importing, NON_COMMERCIAL_MODULES must not be loaded: if any import chain pulled one in,
the import fails by name (the image build runs this check).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any, Dict

# Module names TRELLIS imports that the Gaussian path never calls, and what they are for.
STAND_INS = {
    "open3d": "TRELLIS's text-to-3D pipeline",
    "kaolin": "TRELLIS's mesh extraction (FlexiCubes)",
    "kaolin.utils": "TRELLIS's mesh extraction (FlexiCubes)",
    "kaolin.utils.testing": "TRELLIS's mesh extraction (FlexiCubes)",
}

# TRELLIS's sparse attention accepts only these (trellis/modules/sparse/__init__.py); its dense attention also
# knows sdpa and naive, but one setting drives both here.
ATTENTION_BACKENDS = ("xformers", "flash_attn")
SPCONV_ALGOS = ("auto", "implicit_gemm", "native")


class StandInUsed(ImportError):
    """A stand-in module was used for real: the code path needs the actual package."""


class _StandIn(types.ModuleType):
    def __init__(self, name: str, purpose: str):
        super().__init__(name)
        self.__fast3d_stand_in__ = True
        self._purpose = purpose
        self.__path__ = []  # a package, so `kaolin.utils.testing` resolves through it

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Refusal(f"{self.__name__}.{attr}", self._purpose)


class _Refusal:
    """Any attribute of a stand-in: importable by name, and an error naming the package once used."""

    def __init__(self, what: str, purpose: str):
        self._what, self._purpose = what, purpose

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Refusal(f"{self._what}.{attr}", self._purpose)

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        package = self._what.split(".")[0]
        raise StandInUsed(
            f"{self._what} was called, but {package} is not installed: it is needed for {self._purpose}, "
            "which this worker does not serve (Gaussians only); install the package to use it"
        )


# What the bake (bake.py) and the mesh decoder import; each is required once meshes are on.
MESH_MODULES = ("gsplat", "xatlas", "pyvista", "pymeshfix", "igraph", "trimesh", "cv2", "utils3d.torch")

# Modules whose licences forbid commercial use, which nothing the worker imports may load: nvdiffrast (NVIDIA's
# research/evaluation-only licence) and the Inria/MPII Gaussian rasterisers (non-commercial).
NON_COMMERCIAL_MODULES = ("nvdiffrast", "diff_gaussian_rasterization", "simple_knn")


class NonCommercialModule(ImportError):
    """A module whose licence forbids commercial use was loaded into the worker."""


def refuse_non_commercial(modules: Any = None) -> None:
    """Raises NonCommercialModule when any of NON_COMMERCIAL_MODULES is loaded (`modules`: sys.modules)."""
    loaded = modules if modules is not None else sys.modules
    found = sorted(name for name in loaded if name.split(".")[0] in NON_COMMERCIAL_MODULES and loaded[name] is not None)
    if found:
        raise NonCommercialModule(
            f"{', '.join(found)} was imported, but its licence forbids commercial use: the worker must not load it "
            "(the mesh bake uses gsplat and fast3d_gpu/raster.py instead)")


def check_tensor(tensor: Any, shape: Any = None, dtype: Any = None, device: Any = None, throw: bool = True) -> bool:
    """kaolin.utils.testing.check_tensor's contract: whether `tensor` has `shape` (None entries match any size),
    `dtype` and `device` (None: any); with `throw`, a mismatch raises ValueError instead of returning False."""
    problem = None
    if shape is not None:
        actual = tuple(tensor.shape)
        if len(actual) != len(shape) or any(want is not None and want != got for want, got in zip(shape, actual)):
            problem = f"tensor shape is {actual}, should be {tuple(shape)}"
    if problem is None and dtype is not None and tensor.dtype != dtype:
        problem = f"tensor dtype is {tensor.dtype}, should be {dtype}"
    if problem is None and device is not None and tensor.device != device:
        problem = f"tensor device is {tensor.device}, should be {device}"
    if problem is not None and throw:
        raise ValueError(problem)
    return problem is None


def install_kaolin_check_tensor() -> bool:
    """Makes `from kaolin.utils.testing import check_tensor` give the working check_tensor above when kaolin is
    not installed. Returns True when it did (False: a real kaolin is there)."""
    current = sys.modules.get("kaolin")
    if current is not None and not getattr(current, "__fast3d_stand_in__", False):
        return False
    if current is None and _importable("kaolin"):
        return False
    for name in ("kaolin", "kaolin.utils", "kaolin.utils.testing"):
        module = types.ModuleType(name)
        module.__path__ = []
        module.__fast3d_stand_in__ = True
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    sys.modules["kaolin.utils.testing"].check_tensor = check_tensor
    return True


def install_stand_ins(mesh: bool = False) -> list:
    """Puts a stand-in in sys.modules for each absent package of STAND_INS; returns the names it stood in for.
    With `mesh`, kaolin gets the working check_tensor instead of a refusal."""
    installed = []
    if mesh and install_kaolin_check_tensor():
        installed.append("kaolin (check_tensor)")
    for name, purpose in STAND_INS.items():
        if name in sys.modules:
            continue
        top = name.split(".")[0]
        if top not in installed and _importable(top):
            continue
        sys.modules[name] = _StandIn(name, purpose)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])
        if top not in installed:
            installed.append(top)
    return installed


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def configure_trellis_env(attention_backend: str, spconv_algo: str) -> None:
    """TRELLIS reads its backends from the environment once, when its modules are first imported. The worker's
    flags are the one source: they overwrite what the environment says, for dense and sparse attention alike."""
    if attention_backend not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}, not {attention_backend!r}")
    if spconv_algo not in SPCONV_ALGOS:
        raise ValueError(f"spconv algorithm must be one of {', '.join(SPCONV_ALGOS)}, not {spconv_algo!r}")
    os.environ["ATTN_BACKEND"] = attention_backend
    os.environ["SPARSE_ATTN_BACKEND"] = attention_backend
    os.environ["SPCONV_ALGO"] = spconv_algo


def import_worker_modules(attention_backend: str = "xformers", spconv_algo: str = "auto",
                          load_flux: bool = True, load_trellis: bool = True, load_mesh: bool = False) -> Dict[str, Any]:
    """Imports what the provider uses and returns it by name. Raises ImportError naming what is missing.
    `load_mesh` adds what TRELLIS's mesh decoder and to_glb need, and `to_glb` itself."""
    configure_trellis_env(attention_backend, spconv_algo)
    modules: Dict[str, Any] = {"torch": importlib.import_module("torch")}
    modules["huggingface_hub"] = importlib.import_module("huggingface_hub")
    if load_flux:
        modules["FluxPipeline"] = importlib.import_module("diffusers").FluxPipeline
    if load_trellis:
        attention = importlib.import_module("xformers.ops" if attention_backend == "xformers" else "flash_attn")
        # xformers' dispatcher, for the FlashAttention-3 guard (attention.py); None with flash_attn.
        modules["fmha"] = getattr(attention, "fmha", None) if attention_backend == "xformers" else None
        importlib.import_module("spconv.pytorch")
        modules["stand_ins"] = install_stand_ins(mesh=load_mesh)
        pipelines = importlib.import_module("trellis.pipelines")
        modules["TrellisImageTo3DPipeline"] = pipelines.TrellisImageTo3DPipeline
        modules["trellis_models"] = importlib.import_module("trellis.models")
        modules["trellis_samplers"] = importlib.import_module("trellis.pipelines.samplers")
        if load_mesh:
            for name in MESH_MODULES:
                importlib.import_module(name)
            from . import bake

            modules["to_glb"] = bake.to_glb
            modules["BakeOptions"] = bake.BakeOptions
    refuse_non_commercial()
    return modules
