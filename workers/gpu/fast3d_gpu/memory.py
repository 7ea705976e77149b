"""FLUX's CPU-offload mode from the GPU's memory, for `--flux-offload auto`.

What has to fit (bf16, diffusers FluxPipeline): the FLUX.1-schnell transformer about 24 GB, T5-XXL about
9.5 GB, CLIP-L and the VAE under 1 GB: about 33 GB resident with no offload. TRELLIS-image-large with DINOv2
about 3.5 GB, plus the activations of one 1024 px FLUX image or one TRELLIS run (a few GB each), plus the
Node process's CLIP ViT-L/14 (about 1.7 GB in fp32) and ISNet (about 0.2 GB plus its workspace) sessions and
two CUDA contexts. So:
- 64 GB and more (80 GB A100/H100, 96 GB cards): everything resident ("none");
- 40 to 64 GB (48 GB L40S/A6000): "model", diffusers moves one FLUX sub-model at a time to the GPU, whose
  largest, the transformer, needs about 24 GB next to TRELLIS;
- under 40 GB (24 GB RTX 4090/L4): "sequential", layer by layer (the transformer alone does not fit).
"""

from __future__ import annotations

GIB = 1024 ** 3
OFFLOAD_MODES = ("none", "model", "sequential")
# Thresholds on the total the driver reports (a "48 GB" card reports about 44.5 GiB, an "80 GB" one 79.1 GiB).
RESIDENT_FROM_GIB = 60
MODEL_OFFLOAD_FROM_GIB = 38


def choose_offload(total_bytes: int) -> str:
    gib = total_bytes / GIB
    if gib >= RESIDENT_FROM_GIB:
        return "none"
    if gib >= MODEL_OFFLOAD_FROM_GIB:
        return "model"
    return "sequential"


def resolve_offload(configured: str, total_bytes: int) -> str:
    """The configured mode, or for "auto" the one the memory allows."""
    if configured == "auto":
        return choose_offload(total_bytes)
    if configured not in OFFLOAD_MODES:
        raise ValueError(f"FLUX offload must be auto or one of {', '.join(OFFLOAD_MODES)}, not {configured!r}")
    return configured
