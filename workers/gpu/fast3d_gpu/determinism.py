"""Same seed, same GPU, same image: the same asset (the subnet's audits regenerate and compare).

Per call, every generator the models draw from is seeded: Python's, NumPy's and torch's (CPU and every CUDA
device); FLUX also gets its own torch.Generator. Once, at load, the flags that cost little: cuDNN in
deterministic mode without autotuning, and cuBLAS with a fixed workspace (CUBLAS_WORKSPACE_CONFIG must be set
before the first cuBLAS call, so the worker sets it before importing torch). What stays nondeterministic is
listed in docs/gpu-worker.md ("Determinism").
"""

from __future__ import annotations

import os
import random
from typing import Any

CUBLAS_WORKSPACE = ":4096:8"


def prepare_environment() -> None:
    """Before torch is imported."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def set_deterministic_flags(torch: Any) -> None:
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def seed_everything(torch: Any, seed: int) -> None:
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # the fake-provider tests run without NumPy
        pass
    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device's
