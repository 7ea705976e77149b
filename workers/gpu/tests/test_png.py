"""The standard-library PNG codec: round trips, every row filter, and clear errors."""

from __future__ import annotations

import struct
import unittest
import zlib

import helpers  # noqa: F401 (puts the worker package on the path)
from fast3d_gpu.pngcodec import PngError, decode_rgba, encode_rgba, png_info


def chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def filtered_png(width, height, pixels, channels, colour_type, filters):
    """A PNG whose rows use the given filter types, built independently of the codec under test."""
    stride = width * channels
    raw = bytearray()
    previous = bytes(stride)
    for y in range(height):
        line = pixels[y * stride:(y + 1) * stride]
        kind = filters[y % len(filters)]
        out = bytearray()
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out.append((line[i] - pred) & 0xFF)
        raw += bytes([kind]) + out
        previous = line
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


def pattern(n):
    return bytes((i * 37 + (i // 7) * 11) & 0xFF for i in range(n))


class PngCodecTest(unittest.TestCase):
    def test_round_trip(self):
        pixels = pattern(13 * 9 * 4)
        png = encode_rgba(13, 9, pixels)
        self.assertEqual(decode_rgba(png), (13, 9, bytearray(pixels)))
        info = png_info(png)
        self.assertEqual((info.width, info.height, info.colour_type, info.has_alpha), (13, 9, 6, True))

    def test_every_filter_type_decodes(self):
        pixels = pattern(11 * 10 * 4)
        png = filtered_png(11, 10, pixels, 4, 6, [0, 1, 2, 3, 4])
        self.assertEqual(decode_rgba(png)[2], bytearray(pixels))

    def test_rgb_and_grey_expand_to_opaque_rgba(self):
        rgb = pattern(5 * 4 * 3)
        _, _, rgba = decode_rgba(filtered_png(5, 4, rgb, 3, 2, [4, 1]))
        self.assertEqual(rgba[0:4], bytearray(rgb[0:3]) + b"\xff")
        self.assertFalse(png_info(filtered_png(5, 4, rgb, 3, 2, [0])).has_alpha)
        grey = pattern(5 * 4)
        _, _, rgba = decode_rgba(filtered_png(5, 4, grey, 1, 0, [2]))
        self.assertEqual(rgba[4:8], bytearray([grey[1]] * 3) + b"\xff")

    def test_errors_say_what_is_wrong(self):
        with self.assertRaisesRegex(PngError, "signature"):
            png_info(b"\xff\xd8\xff" + bytes(40))
        png = bytearray(encode_rgba(4, 4, bytes(64)))
        truncated = bytes(png[:-20])
        with self.assertRaises(PngError):
            decode_rgba(truncated)
        with self.assertRaisesRegex(PngError, "expected 64 bytes"):
            encode_rgba(4, 4, bytes(10))


if __name__ == "__main__":
    unittest.main()
