"""The imports the real provider needs, in one place: `worker.py --check-imports` and the image's build-time
check run exactly this, so a broken environment fails the build instead of a GPU box.

`from trellis.pipelines import TrellisImageTo3DPipeline` runs trellis/__init__.py, which imports every
pipeline and representation (microsoft/TRELLIS, trellis/__init__.py):
- trellis/pipelines/trellis_text_to_3d.py imports open3d (used by the text-to-3D pipeline only);
- trellis/representations/mesh/cube2mesh.py imports FlexiCubes, whose module imports
  `kaolin.utils.testing.check_tensor` (used by mesh extraction only).
This worker decodes Gaussians only, so neither package is installed (open3d alone is hundreds of MB and
kaolin has no wheel for every torch/CUDA pair). Where one is absent, a stand-in module takes its place for
the import; any use of it raises an error that names the package, so a mesh code path can never run on a
stand-in unnoticed. When meshes arrive, install the real packages and the stand-ins step aside.
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


def install_stand_ins() -> list:
    """Puts a stand-in in sys.modules for each absent package of STAND_INS; returns the names it stood in for."""
    installed = []
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
                          load_flux: bool = True, load_trellis: bool = True) -> Dict[str, Any]:
    """Imports what the provider uses and returns it by name. Raises ImportError naming what is missing."""
    configure_trellis_env(attention_backend, spconv_algo)
    modules: Dict[str, Any] = {"torch": importlib.import_module("torch")}
    modules["huggingface_hub"] = importlib.import_module("huggingface_hub")
    if load_flux:
        modules["FluxPipeline"] = importlib.import_module("diffusers").FluxPipeline
    if load_trellis:
        importlib.import_module("xformers.ops" if attention_backend == "xformers" else "flash_attn")
        importlib.import_module("spconv.pytorch")
        modules["stand_ins"] = install_stand_ins()
        modules["TrellisImageTo3DPipeline"] = importlib.import_module("trellis.pipelines").TrellisImageTo3DPipeline
    return modules
