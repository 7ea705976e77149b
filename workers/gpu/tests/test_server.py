"""The worker's HTTP layer driven through a real loopback socket with the fake provider (no torch)."""

from __future__ import annotations

import base64
import math
import threading
import time
import unittest

from helpers import FakeWorkerTestCase, RunningWorker, parse_ply
from fast3d_gpu.fake import FakeProvider
from fast3d_gpu.ply import PROPERTIES
from fast3d_gpu.pngcodec import decode_rgba, encode_rgba, png_info
from fast3d_gpu.provider import OutOfMemory


def disc_png(size=96, radius=0.35, colour=(200, 40, 40), alpha_outside=0):
    pixels = bytearray()
    for y in range(size):
        for x in range(size):
            inside = math.hypot((x + 0.5) / size - 0.5, (y + 0.5) / size - 0.5) < radius
            pixels += bytes(colour) + bytes([255]) if inside else bytes([255, 255, 255, alpha_outside])
    return encode_rgba(size, size, bytes(pixels))


def splat_body(png, **extra):
    return {"image": base64.b64encode(png).decode(), "seed": 7, **extra}


class GatedProvider(FakeProvider):
    """Loads only when the test says so."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def load(self):
        self.release.wait(10)
        super().load()


class ReadyWorkerTest(FakeWorkerTestCase):

    def test_health_reports_ready_models_and_device(self):
        status, _, body = self.running.json("GET", "/health")
        self.assertEqual(status, 200)
        self.assertTrue(body["ready"])
        self.assertEqual([m["name"] for m in body["models"]], ["text-to-image", "image-to-3d"])
        self.assertTrue(all(m["loaded"] for m in body["models"]))
        for key in ("device", "vram_total", "vram_used"):
            self.assertIn(key, body)

    def test_image_generation_returns_png_of_the_requested_size(self):
        status, _, body = self.running.json("POST", "/v1/images/generations", {
            "prompt": "a red apple", "size": "256x192", "n": 1, "response_format": "b64_json", "seed": 3, "steps": 2,
        })
        self.assertEqual(status, 200)
        self.assertEqual(len(body["data"]), 1)
        png = base64.b64decode(body["data"][0]["b64_json"])
        info = png_info(png)
        self.assertEqual((info.width, info.height), (256, 192))
        width, height, rgba = decode_rgba(png)
        self.assertEqual(rgba[0:4], b"\xff\xff\xff\xff", "corner is white background")
        centre = ((height // 2) * width + width // 2) * 4
        self.assertNotEqual(rgba[centre:centre + 3], b"\xff\xff\xff", "the object is in the middle")

    def test_image_generation_is_deterministic_per_prompt_and_seed(self):
        def generate(prompt, seed):
            _, _, body = self.running.json("POST", "/v1/images/generations", {"prompt": prompt, "size": "128x128", "seed": seed})
            return body["data"][0]["b64_json"]

        self.assertEqual(generate("a cup", 1), generate("a cup", 1))
        self.assertNotEqual(generate("a cup", 1), generate("a cup", 2))

    def test_openai_defaults_and_extra_fields_are_accepted(self):
        status, _, body = self.running.json("POST", "/v1/images/generations", {"prompt": "a vase", "model": "flux", "size": "64x64"})
        self.assertEqual(status, 200, body)

    def test_bad_image_requests_get_400_with_a_reason(self):
        cases = [
            ({"size": "64x64"}, "prompt"),
            ({"prompt": "   ", "size": "64x64"}, "prompt"),
            ({"prompt": "x", "size": "100x100"}, "multiple of 16"),
            ({"prompt": "x", "size": "big"}, "WIDTHxHEIGHT"),
            ({"prompt": "x", "size": "64x64", "n": 2}, "n must be 1"),
            ({"prompt": "x", "size": "64x64", "response_format": "url"}, "b64_json"),
            ({"prompt": "x", "size": "64x64", "seed": -1}, "seed"),
            ({"prompt": "x", "size": "64x64", "seed": 1.5}, "seed"),
            ({"prompt": "x", "size": "64x64", "seed": float("inf")}, "seed"),
            ({"prompt": "x", "size": "64x64", "steps": float("nan")}, "steps"),
            ({"prompt": "x", "size": "64x64", "steps": 0}, "steps"),
            ([1, 2], "JSON object"),
        ]
        for body, reason in cases:
            with self.subTest(body=body):
                status, headers, answer = self.running.json("POST", "/v1/images/generations", body)
                self.assertEqual(status, 400)
                self.assertEqual(headers["Content-Type"], "application/json")
                self.assertIn(reason, answer["error"])

    def test_invalid_json_and_unknown_routes(self):
        status, _, answer = self.running.json("POST", "/v1/images/generations", raw=b"{not json")
        self.assertEqual(status, 400)
        self.assertIn("not valid JSON", answer["error"])
        status, _, answer = self.running.json("GET", "/v1/models")
        self.assertEqual(status, 404)
        self.assertIn("no route", answer["error"])

    def test_image_to_3d_returns_a_trellis_frame_ply(self):
        status, headers, ply = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(160)))
        self.assertEqual(status, 200, ply[:200])
        self.assertEqual(headers["Content-Type"], "application/octet-stream")
        lines, count, rows, exact = parse_ply(ply)
        self.assertEqual(lines[:3], ["ply", "format binary_little_endian 1.0", f"element vertex {count}"])
        self.assertEqual([line.split()[2] for line in lines[3:-1]], list(PROPERTIES))
        self.assertTrue(all(line.startswith("property float ") for line in lines[3:-1]))
        self.assertTrue(exact, "body holds exactly count rows")
        self.assertGreaterEqual(count, 7000)
        for row in rows[:: max(1, count // 500)]:
            for axis in "xyz":
                self.assertLessEqual(abs(row[axis]), 0.5)
        # The picture's up is TRELLIS's +Z: the red disc spans z, and its front faces -Y.
        zs = [r["z"] for r in rows]
        self.assertGreater(max(zs) - min(zs), 0.5)
        front = [r for r in rows if r["y"] < 0]
        self.assertTrue(front and all(r["f_dc_0"] > 0 for r in front[:100]), "front keeps the picture's red")

    def test_image_to_3d_depends_on_the_seed(self):
        _, _, a = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), seed=1))
        _, _, b = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), seed=1))
        _, _, c = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), seed=2))
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_the_fake_records_the_steps_and_cfg_of_each_call(self):
        self.running.json("POST", "/v1/images/generations", {"prompt": "a cup", "size": "256x256", "steps": 2, "seed": 9})
        self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), sparse_structure_steps=6, sparse_structure_cfg=5.5,
                                                                   slat_steps=7, slat_cfg=2.5))
        status, _, body = self.running.json("GET", "/v1/received")
        self.assertEqual(status, 200)
        image, splat = body["received"][-2:]
        self.assertEqual(image, {"route": "images/generations", "prompt": "a cup", "seed": 9, "width": 256, "height": 256, "steps": 2})
        self.assertEqual(splat, {"route": "image-to-3d", "seed": 7, "sparse_structure_steps": 6, "sparse_structure_cfg": 5.5,
                                 "slat_steps": 7, "slat_cfg": 2.5})

    def test_bad_image_to_3d_requests_get_400(self):
        rgb = encode_rgba(8, 8, b"\x00" * 256)
        rgb_only = bytearray(rgb)
        rgb_only[25] = 2  # colour type RGB in IHDR (the CRC is not checked by the header reader)
        cases = [
            ({"seed": 1}, "base64-encoded RGBA PNG"),
            ({"image": "@@@not base64"}, "base64"),
            ({"image": base64.b64encode(b"GIF89a......").decode()}, "not a PNG"),
            ({"image": base64.b64encode(bytes(rgb_only)).decode()}, "RGBA"),
            (splat_body(disc_png(), slat_steps=0), "slat_steps"),
            (splat_body(disc_png(), sparse_structure_cfg="high"), "sparse_structure_cfg"),
            (splat_body(disc_png(alpha_outside=0, radius=0)), "no opaque pixels"),
        ]
        for body, reason in cases:
            with self.subTest(reason=reason):
                status, _, answer = self.running.json("POST", "/v1/image-to-3d", body)
                self.assertEqual(status, 400, answer)
                self.assertIn(reason, answer["error"])

    def test_data_url_prefix_is_accepted(self):
        body = splat_body(disc_png())
        body["image"] = "data:image/png;base64," + body["image"]
        status, _, _ = self.running.request("POST", "/v1/image-to-3d", body)
        self.assertEqual(status, 200)


class LifecycleTest(unittest.TestCase):
    def test_503_while_loading_then_ready(self):
        provider = GatedProvider()
        running = RunningWorker(provider)
        try:
            status, headers, body = running.json("GET", "/health")
            self.assertEqual(status, 503)
            self.assertEqual((body["ready"], body["status"]), (False, "loading"))
            status, headers, body = running.json("POST", "/v1/images/generations", {"prompt": "x", "size": "64x64"})
            self.assertEqual(status, 503)
            self.assertIn("loading", body["error"])
            self.assertIn("Retry-After", headers)
            provider.release.set()
            running.wait_loaded()
            status, _, body = running.json("GET", "/health")
            self.assertEqual((status, body["ready"]), (200, True))
        finally:
            provider.release.set()
            running.close()

    def test_failed_load_is_reported_and_requests_get_503(self):
        running = RunningWorker(FakeProvider(fail_with="weights not found at /models/flux"))
        try:
            running.wait_loaded()
            status, _, body = running.json("GET", "/health")
            self.assertEqual((status, body["status"]), (503, "failed"))
            self.assertIn("weights not found", body["error"])
            status, _, body = running.json("POST", "/v1/image-to-3d", splat_body(disc_png()))
            self.assertEqual(status, 503)
            self.assertIn("weights not found", body["error"])
        finally:
            running.close()

    def test_out_of_memory_answers_503_and_the_worker_keeps_serving(self):
        class OomOnce(FakeProvider):
            calls = 0

            def generate_image(self, request):
                self.calls += 1
                if self.calls == 1:
                    raise OutOfMemory("CUDA out of memory during text-to-image; memory was freed")
                return super().generate_image(request)

        running = RunningWorker(OomOnce())
        try:
            running.wait_loaded()
            status, _, body = running.json("POST", "/v1/images/generations", {"prompt": "x", "size": "64x64"})
            self.assertEqual(status, 503)
            self.assertIn("out of memory", body["error"])
            status, _, _ = running.json("POST", "/v1/images/generations", {"prompt": "x", "size": "64x64"})
            self.assertEqual(status, 200)
        finally:
            running.close()

    def test_unexpected_errors_answer_500_json(self):
        class Broken(FakeProvider):
            def image_to_3d(self, request):
                raise KeyError("gaussian")

        running = RunningWorker(Broken())
        try:
            running.wait_loaded()
            status, headers, body = running.json("POST", "/v1/image-to-3d", splat_body(disc_png()))
            self.assertEqual(status, 500)
            self.assertIn("KeyError", body["error"])
            self.assertEqual(running.json("GET", "/health")[0], 200)
        finally:
            running.close()

    def test_gpu_work_is_serialised(self):
        class Slow(FakeProvider):
            active = 0
            overlap = 0

            def generate_image(self, request):
                Slow.active += 1
                Slow.overlap = max(Slow.overlap, Slow.active)
                time.sleep(0.05)
                Slow.active -= 1
                return super().generate_image(request)

        running = RunningWorker(Slow())
        try:
            running.wait_loaded()
            results = []
            threads = [
                threading.Thread(target=lambda: results.append(
                    running.json("POST", "/v1/images/generations", {"prompt": "x", "size": "64x64"})[0]))
                for _ in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(results, [200] * 4)
            self.assertEqual(Slow.overlap, 1)
        finally:
            running.close()

    def test_body_limit_answers_413(self):
        from fast3d_gpu.server import Limits

        running = RunningWorker(FakeProvider(), Limits(max_body_bytes=100))
        try:
            running.wait_loaded()
            status, _, body = running.json("POST", "/v1/image-to-3d", splat_body(disc_png(64)))
            self.assertEqual(status, 413)
            self.assertIn("larger than 100 bytes", body["error"])
        finally:
            running.close()


if __name__ == "__main__":
    unittest.main()
