"""PNG with the standard library only: header inspection (request validation), an RGBA8 encoder and decoder
(the fake provider). The real provider decodes with Pillow."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> channels, for 8-bit images
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


class PngError(ValueError):
    pass


@dataclass
class PngInfo:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool

    @property
    def has_alpha(self) -> bool:
        return self.colour_type in (4, 6)


def png_info(data: bytes) -> PngInfo:
    """Reads the IHDR chunk; raises PngError when the bytes are not a PNG."""
    if len(data) < 33 or data[:8] != SIGNATURE:
        raise PngError("not a PNG (bad signature)")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise PngError("PNG does not start with an IHDR chunk")
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if width == 0 or height == 0:
        raise PngError("PNG has a zero width or height")
    return PngInfo(width, height, depth, colour, interlace == 1)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def encode_rgba(width: int, height: int, pixels: bytes, level: int = 6) -> bytes:
    """Encodes row-major RGBA8 pixels (no filtering: fast in pure Python)."""
    stride = width * 4
    if len(pixels) != stride * height:
        raise PngError(f"expected {stride * height} bytes of RGBA, got {len(pixels)}")
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        raw += pixels[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), level)) + _chunk(b"IEND", b"")


def decode_rgba(data: bytes) -> tuple[int, int, bytearray]:
    """Decodes an 8-bit, non-interlaced grey/grey-alpha/RGB/RGBA PNG to (width, height, RGBA8 bytes)."""
    info = png_info(data)
    if info.bit_depth != 8 or info.colour_type not in _CHANNELS or info.interlaced:
        raise PngError(f"unsupported PNG (bit depth {info.bit_depth}, colour type {info.colour_type}, interlaced {info.interlaced})")
    channels = _CHANNELS[info.colour_type]
    idat = bytearray()
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        start = offset + 8
        if start + length + 4 > len(data):
            raise PngError("PNG chunk runs past the end of the data")
        if kind == b"IDAT":
            idat += data[start:start + length]
        elif kind == b"IEND":
            break
        offset = start + length + 4
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as err:
        raise PngError(f"PNG image data is corrupt: {err}") from None
    stride = info.width * channels
    if len(raw) != (stride + 1) * info.height:
        raise PngError("PNG image data has the wrong length")
    rows = _unfilter(raw, stride, info.height, channels)
    if channels == 4:
        return info.width, info.height, rows
    out = bytearray(info.width * info.height * 4)
    n = info.width * info.height
    if channels == 3:
        out[0::4], out[1::4], out[2::4] = rows[0::3], rows[1::3], rows[2::3]
        out[3::4] = b"\xff" * n
    elif channels == 1:
        out[0::4] = out[1::4] = out[2::4] = rows
        out[3::4] = b"\xff" * n
    else:
        out[0::4] = out[1::4] = out[2::4] = rows[0::2]
        out[3::4] = rows[1::2]
    return info.width, info.height, out


def _unfilter(raw: bytes, stride: int, height: int, bpp: int) -> bytearray:
    out = bytearray(stride * height)
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        elif kind != 0:
            raise PngError(f"unknown PNG filter type {kind}")
        out[y * stride:(y + 1) * stride] = line
        previous = line
    return out
