"""The worker protocol's version and its one binary container (docs/gpu-worker.md "Protocol").

Version 2 added meshes: POST /v1/image-to-3d with a `mesh` object answers a container holding the Gaussians'
PLY and the baked GLB; without it the answer is the PLY alone, as in version 1. /health carries `protocol`, and
every answer carries the PROTOCOL_HEADER, so a service built for another version refuses the worker by name.

The container, all integers little-endian:

    offset 0   8 bytes   magic b"F3DPARTS"
    offset 8   u32       protocol version
    offset 12  u32       number of parts, N
    offset 16  N entries of 24 bytes: the part's name (ASCII, NUL-padded to 16 bytes), u64 byte length
    then       the parts' bytes, in the entries' order, back to back

Lengths are explicit, so a truncated answer is detected, and a part (a GLB of tens of MB) is sent as it is,
without base64's third more or a JSON parse.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

PROTOCOL_VERSION = 2
PROTOCOL_HEADER = "X-Fast3d-Protocol"
PARTS_CONTENT_TYPE = "application/x-fast3d-parts"
PARTS_MAGIC = b"F3DPARTS"
_HEAD = struct.Struct("<8sII")
_ENTRY = struct.Struct("<16sQ")
NAME_BYTES = 16


def pack_parts(parts: List[Tuple[str, bytes]], version: int = PROTOCOL_VERSION) -> bytes:
    """The container of `parts` ((name, bytes), in order; names unique, ASCII, at most 16 bytes)."""
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"part names must be unique: {names}")
    out = [_HEAD.pack(PARTS_MAGIC, version, len(parts))]
    for name, payload in parts:
        encoded = name.encode("ascii")
        if not encoded or len(encoded) > NAME_BYTES:
            raise ValueError(f"part name {name!r} must be 1..{NAME_BYTES} ASCII bytes")
        out.append(_ENTRY.pack(encoded, len(payload)))
    out.extend(payload for _, payload in parts)
    return b"".join(out)


def unpack_parts(data: bytes) -> Tuple[int, Dict[str, bytes]]:
    """(version, {name: bytes}) of a container; ValueError when it is not one or is cut short."""
    if len(data) < _HEAD.size:
        raise ValueError("container shorter than its header")
    magic, version, count = _HEAD.unpack_from(data, 0)
    if magic != PARTS_MAGIC:
        raise ValueError("not a fast3d parts container (bad magic)")
    offset = _HEAD.size + count * _ENTRY.size
    if len(data) < offset:
        raise ValueError("container shorter than its part table")
    parts: Dict[str, bytes] = {}
    for i in range(count):
        raw, length = _ENTRY.unpack_from(data, _HEAD.size + i * _ENTRY.size)
        name = raw.rstrip(b"\0").decode("ascii")
        if offset + length > len(data):
            raise ValueError(f"part {name!r} runs past the end of the container")
        parts[name] = data[offset:offset + length]
        offset += length
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the last part")
    return version, parts
