"""Binary PLY of 3D Gaussians as the worker returns it: TRELLIS's properties and values (what its
`save_ply(path, transform=None)` writes) without the all-zero normals, float32 little-endian."""

from __future__ import annotations

PROPERTIES = (
    "x", "y", "z",
    "f_dc_0", "f_dc_1", "f_dc_2",
    "opacity",
    "scale_0", "scale_1", "scale_2",
    "rot_0", "rot_1", "rot_2", "rot_3",
)


def ply_header(count: int) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    lines += [f"property float {name}" for name in PROPERTIES]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def encode_ply(count: int, body: bytes) -> bytes:
    """`body` holds `count` rows of len(PROPERTIES) little-endian float32 values in PROPERTIES order."""
    if len(body) != count * len(PROPERTIES) * 4:
        raise ValueError(f"PLY body has {len(body)} bytes, {count} Gaussians need {count * len(PROPERTIES) * 4}")
    return ply_header(count) + body
