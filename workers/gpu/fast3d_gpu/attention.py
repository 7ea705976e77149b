"""Which FlashAttention xformers may use on this card.

xformers 0.0.31 (facebookresearch/xformers, xformers/ops/fmha/dispatch.py) puts FlashAttention-3 (`flash3.FwOp`)
first for fp16/bf16 attention whenever its module flag `_USE_FLASH_ATTENTION_3` is on (the default), and FA3's
operator declares only a minimum compute capability (8.0), no maximum. Its kernels are compiled for sm80 and sm90
only, so on Blackwell (compute capability 10.0 and 12.0) the first attention call fails with "no kernel image", the
warm-up fails, and the worker never becomes ready.

Decision: below 10.0 FA3 is left as xformers chooses; from 10.0 up it is switched off with xformers' own setter
(`xformers.ops.fmha._set_use_fa3(False)`), so dispatch goes on to FlashAttention-2 or xformers' CUTLASS kernels, which
the cu128 wheel builds for Blackwell. Building flash-attn for 10.0 and 12.0 instead was not chosen: FA3 is a Hopper
design (its kernels use sm90 instructions), so a build for newer cards does not give FA3 there, and the build takes
hours of compilation per image for a speed-up the competitions' budgets do not need.
"""

from __future__ import annotations

from typing import Any, Tuple

# The first compute capability whose FA3 kernels xformers 0.0.31 does not ship.
FA3_FIRST_UNSUPPORTED = (10, 0)


def fa3_allowed(capability: Tuple[int, int]) -> bool:
    """Whether xformers may keep FlashAttention-3 on a card of this compute capability."""
    return tuple(capability) < FA3_FIRST_UNSUPPORTED


def fa3_decision(capability: Tuple[int, int]) -> str:
    """One line for logs and the GPU proof table."""
    major, minor = capability
    if fa3_allowed(capability):
        return f"compute {major}.{minor}: FlashAttention-3 left to xformers (kernels built for sm80/sm90)"
    return f"compute {major}.{minor}: FlashAttention-3 off (xformers ships no kernels for it at 10.0 and above)"


def apply_fa3_guard(torch: Any, fmha: Any, device: int = 0) -> str:
    """Switches FA3 off on cards that cannot run it; `fmha` is xformers.ops.fmha (None: xformers is not used).
    Returns the decision line."""
    capability = tuple(torch.cuda.get_device_capability(device))
    decision = fa3_decision(capability)
    if fmha is not None and not fa3_allowed(capability):
        setter = getattr(fmha, "_set_use_fa3", None)
        if setter is None:
            raise RuntimeError("xformers.ops.fmha has no _set_use_fa3: this xformers cannot be told to leave "
                               "FlashAttention-3 alone on this card; use the pinned xformers 0.0.31")
        setter(False)
    return decision
