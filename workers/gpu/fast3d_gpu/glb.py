"""A binary glTF 2.0 (GLB) writer for one textured triangle mesh, standard library only (the fake provider's
mesh; the real provider's GLB is trimesh's export of TRELLIS's to_glb).

Layout (glTF 2.0 specification, "Binary glTF Layout"): a 12-byte header (magic "glTF", version 2, total
length), a JSON chunk padded with spaces to 4 bytes, a BIN chunk padded with zeros to 4 bytes. One buffer holds
POSITION (float32, with the min and max the specification requires), NORMAL, TEXCOORD_0 (float32, glTF's
convention: (0, 0) is the texture's top-left), the indices (uint32) and the PNG, each view 4-byte aligned.
"""

from __future__ import annotations

import json
import struct
from typing import List, Optional, Sequence, Tuple

GLB_MAGIC = b"glTF"
JSON_CHUNK = 0x4E4F534A
BIN_CHUNK = 0x004E4942
FLOAT, UNSIGNED_INT = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
TRIANGLES = 4
LINEAR, LINEAR_MIPMAP_LINEAR, REPEAT = 9729, 9987, 10497

Vec3 = Tuple[float, float, float]


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def _f32(value: float) -> float:
    """The value as float32 stores it, so an accessor's min and max match its data exactly."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def vertex_normals(positions: Sequence[Vec3], triangles: Sequence[Tuple[int, int, int]]) -> List[Vec3]:
    """Area-weighted unit normals per vertex."""
    sums = [[0.0, 0.0, 0.0] for _ in positions]
    for a, b, c in triangles:
        pa, pb, pc = positions[a], positions[b], positions[c]
        u = [pb[i] - pa[i] for i in range(3)]
        v = [pc[i] - pa[i] for i in range(3)]
        n = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
        for k in (a, b, c):
            for i in range(3):
                sums[k][i] += n[i]
    out = []
    for s in sums:
        length = (s[0] ** 2 + s[1] ** 2 + s[2] ** 2) ** 0.5 or 1.0
        out.append((s[0] / length, s[1] / length, s[2] / length))
    return out


def encode_glb(positions: Sequence[Vec3], triangles: Sequence[Tuple[int, int, int]], uvs: Sequence[Tuple[float, float]],
               texture_png: bytes, normals: Optional[Sequence[Vec3]] = None, name: str = "mesh") -> bytes:
    """A GLB of one mesh: triangles counter-clockwise seen from outside, base colour from the PNG through `uvs`."""
    if len(uvs) != len(positions):
        raise ValueError(f"{len(uvs)} UVs for {len(positions)} vertices")
    if normals is None:
        normals = vertex_normals(positions, triangles)
    count = len(positions)
    blobs = [
        b"".join(struct.pack("<3f", *p) for p in positions),
        b"".join(struct.pack("<3f", *n) for n in normals),
        b"".join(struct.pack("<2f", *t) for t in uvs),
        b"".join(struct.pack("<3I", *t) for t in triangles),
        texture_png,
    ]
    views, binary = [], b""
    for i, blob in enumerate(blobs):
        view = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(blob)}
        if i < 3:
            view["target"] = ARRAY_BUFFER
        elif i == 3:
            view["target"] = ELEMENT_ARRAY_BUFFER
        views.append(view)
        binary = _pad(binary + blob, b"\0")
    lows = [_f32(min(p[i] for p in positions)) for i in range(3)]
    highs = [_f32(max(p[i] for p in positions)) for i in range(3)]
    document = {
        "asset": {"version": "2.0", "generator": "fast3d-gpu-worker fake provider"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2},
            "indices": 3, "material": 0, "mode": TRIANGLES,
        }]}],
        "materials": [{
            "name": "baked",
            "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 1.0},
        }],
        "textures": [{"source": 0, "sampler": 0}],
        "images": [{"bufferView": 4, "mimeType": "image/png"}],
        "samplers": [{"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR, "wrapS": REPEAT, "wrapT": REPEAT}],
        "accessors": [
            {"bufferView": 0, "componentType": FLOAT, "count": count, "type": "VEC3", "min": lows, "max": highs},
            {"bufferView": 1, "componentType": FLOAT, "count": count, "type": "VEC3"},
            {"bufferView": 2, "componentType": FLOAT, "count": count, "type": "VEC2"},
            {"bufferView": 3, "componentType": UNSIGNED_INT, "count": len(triangles) * 3, "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    text = _pad(json.dumps(document, separators=(",", ":")).encode("utf-8"), b" ")
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([
        struct.pack("<4sII", GLB_MAGIC, 2, total),
        struct.pack("<II", len(text), JSON_CHUNK), text,
        struct.pack("<II", len(binary), BIN_CHUNK), binary,
    ])


def read_glb(data: bytes) -> Tuple[dict, bytes]:
    """(JSON document, BIN chunk) of a GLB; ValueError when the layout is wrong. For tests and checks."""
    if len(data) < 20:
        raise ValueError("GLB shorter than its header")
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != GLB_MAGIC or version != 2:
        raise ValueError(f"not a glTF 2 binary (magic {magic!r}, version {version})")
    if total != len(data):
        raise ValueError(f"GLB header says {total} bytes, got {len(data)}")
    length, kind = struct.unpack_from("<II", data, 12)
    if kind != JSON_CHUNK or length % 4:
        raise ValueError("first GLB chunk is not a 4-byte aligned JSON chunk")
    document = json.loads(data[20:20 + length])
    binary = b""
    offset = 20 + length
    if offset < len(data):
        blength, bkind = struct.unpack_from("<II", data, offset)
        if bkind != BIN_CHUNK:
            raise ValueError("second GLB chunk is not BIN")
        binary = data[offset + 8:offset + 8 + blength]
    return document, binary
