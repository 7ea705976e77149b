"""Protocol 2 and meshes: the version on /health and on every answer, mesh requests through the fake provider
(the parts container, a valid GLB), Gaussian-only requests unchanged, and the real provider's mesh branch with
TRELLIS and to_glb stood in for."""

from __future__ import annotations

import struct
import unittest
from unittest import mock

import helpers
from helpers import FakeWorkerTestCase, RunningWorker, parse_ply
from test_server import disc_png, splat_body
from test_torch_provider import FakeTorch
from fast3d_gpu import torch_provider
from fast3d_gpu.fake import NOSE, SPIRE, FakeProvider
from fast3d_gpu.glb import read_glb
from fast3d_gpu.protocol import PARTS_CONTENT_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, pack_parts, unpack_parts
from fast3d_gpu.provider import MeshOptions, SplatRequest
from fast3d_gpu.torch_provider import TorchProvider


class ProtocolTest(FakeWorkerTestCase):

    def test_health_and_every_answer_carry_protocol_2(self):
        self.assertEqual(PROTOCOL_VERSION, 2)
        status, headers, body = self.running.json("GET", "/health")
        self.assertEqual((status, body["protocol"], body["mesh"]), (200, 2, True))
        self.assertEqual(headers[PROTOCOL_HEADER], "2")
        status, headers, _ = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png()))
        self.assertEqual((status, headers[PROTOCOL_HEADER]), (200, "2"))
        status, headers, _ = self.running.json("POST", "/v1/image-to-3d", {"image": "!!"})
        self.assertEqual((status, headers[PROTOCOL_HEADER]), (400, "2"))
        status, headers, _ = self.running.json("GET", "/nowhere")
        self.assertEqual((status, headers[PROTOCOL_HEADER]), (404, "2"))

    def test_gaussian_only_requests_answer_the_ply_alone_as_before(self):
        status, headers, data = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png()))
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/octet-stream")
        self.assertTrue(data.startswith(b"ply\n"))
        _, count, _, exact = parse_ply(data)
        self.assertTrue(exact and count > 7000)
        for off in (None, False):
            _, _, same = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), mesh=off))
            self.assertEqual(same, data, "mesh: null / false is a Gaussian-only request")
        _, _, received = self.running.json("GET", "/v1/received")
        self.assertNotIn("mesh", received["received"][-1])

    def test_a_mesh_request_answers_the_ply_and_a_glb_of_one_textured_mesh(self):
        body = splat_body(disc_png(), mesh={"simplify": 0.9, "texture_size": 128})
        status, headers, data = self.running.request("POST", "/v1/image-to-3d", body)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], PARTS_CONTENT_TYPE)
        self.assertEqual(int(headers["Content-Length"]), len(data))
        version, parts = unpack_parts(data)
        self.assertEqual((version, sorted(parts)), (2, ["glb", "ply"]))
        _, _, gaussian_only = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png()))
        self.assertEqual(parts["ply"], gaussian_only, "the PLY part is the Gaussian-only answer")

        glb = parts["glb"]
        magic, glb_version, total = struct.unpack_from("<4sII", glb, 0)
        self.assertEqual((magic, glb_version, total), (b"glTF", 2, len(glb)))
        document, binary = read_glb(glb)
        self.assertEqual(document["asset"]["version"], "2.0")
        self.assertEqual(len(document["meshes"]), 1)
        primitive = document["meshes"][0]["primitives"][0]
        self.assertEqual(sorted(primitive["attributes"]), ["NORMAL", "POSITION", "TEXCOORD_0"])
        self.assertGreater(document["accessors"][primitive["indices"]]["count"] // 3, 100)
        position = document["accessors"][primitive["attributes"]["POSITION"]]
        # to_glb's frame: +Y up (the spire), front toward +Z (the nose).
        self.assertAlmostEqual(position["max"][1], SPIRE, places=6)
        self.assertAlmostEqual(position["max"][2], NOSE, places=6)
        image = document["images"][0]
        view = document["bufferViews"][image["bufferView"]]
        png = binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(struct.unpack(">II", png[16:24]), (128, 128), "texture_size reaches the bake")

        _, _, received = self.running.json("GET", "/v1/received")
        self.assertEqual(received["received"][-2]["mesh"], {"simplify": 0.9, "texture_size": 128})

    def test_mesh_defaults_and_bad_mesh_options(self):
        status, _, data = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png(), mesh={}))
        self.assertEqual(status, 200)
        _, _, received = self.running.json("GET", "/v1/received")
        self.assertEqual(received["received"][-1]["mesh"], {"simplify": 0.95, "texture_size": 1024})
        for mesh, message in (({"simplify": 1.0}, "mesh.simplify must be in"), ({"simplify": "a lot"}, "mesh.simplify must be a number"),
                              ({"texture_size": 100.5}, "mesh.texture_size must be an integer"),
                              ({"texture_size": 8192}, "mesh.texture_size must be"), ("yes", "mesh must be a JSON object")):
            status, _, body = self.running.json("POST", "/v1/image-to-3d", splat_body(disc_png(), mesh=mesh))
            self.assertEqual(status, 400, mesh)
            self.assertIn(message, body["error"])

    def test_a_worker_without_meshes_refuses_mesh_requests_by_name(self):
        running = RunningWorker(FakeProvider(mesh=False))
        try:
            running.wait_loaded()
            _, _, health = running.json("GET", "/health")
            self.assertFalse(health["mesh"])
            status, _, body = running.json("POST", "/v1/image-to-3d", splat_body(disc_png(), mesh={}))
            self.assertEqual(status, 400)
            self.assertIn("--mesh", body["error"])
            status, _, _ = running.request("POST", "/v1/image-to-3d", splat_body(disc_png()))
            self.assertEqual(status, 200)
        finally:
            running.close()


class PartsContainerTest(unittest.TestCase):
    def test_round_trip_and_truncation(self):
        packed = pack_parts([("ply", b"abc"), ("glb", b"x" * 1000)])
        self.assertEqual(packed[:8], b"F3DPARTS")
        self.assertEqual(unpack_parts(packed), (2, {"ply": b"abc", "glb": b"x" * 1000}))
        with self.assertRaisesRegex(ValueError, "runs past the end"):
            unpack_parts(packed[:-1])
        with self.assertRaisesRegex(ValueError, "bad magic"):
            unpack_parts(b"PK" + packed[2:])
        with self.assertRaises(ValueError):
            pack_parts([("ply", b""), ("ply", b"")])


class KaolinCheckTensorTest(unittest.TestCase):
    def test_the_stand_in_check_tensor_keeps_kaolins_contract(self):
        from fast3d_gpu.trellis_imports import check_tensor

        tensor = type("T", (), {"shape": (5, 3), "dtype": "float32", "device": "cuda:0"})()
        self.assertTrue(check_tensor(tensor, (None, 3), throw=False))
        self.assertTrue(check_tensor(tensor, (5, 3), dtype="float32", device="cuda:0"))
        self.assertFalse(check_tensor(tensor, (5,), throw=False))
        self.assertFalse(check_tensor(tensor, (None, 8), throw=False))
        with self.assertRaisesRegex(ValueError, "shape"):
            check_tensor(tensor, (4, 3))
        self.assertFalse(check_tensor(tensor, dtype="int64", throw=False))


class GradTorch(FakeTorch):
    """FakeTorch whose no_grad is tracked, to see where to_glb runs."""

    def __init__(self):
        super().__init__()
        self.grad_enabled = True
        outer = self

        class NoGrad:
            def __enter__(self):
                outer.grad_enabled = False

            def __exit__(self, *exc):
                outer.grad_enabled = True
                return False

        self.no_grad = NoGrad


class FakeTrellis:
    """TRELLIS's pipeline stages, as _run_trellis calls them (run() taken apart), each recorded."""

    def __init__(self, torch=None):
        self.calls = []
        self.stages = []
        self.torch = torch

    def get_cond(self, images):
        self.stages.append("cond")
        return {"cond": images[0]}

    def sample_sparse_structure(self, cond, num_samples, params):
        self.stages.append("sparse structure")
        self.calls.append({"sparse_structure_sampler_params": params,
                           "seed": self.torch.seeds[-1] if self.torch is not None else None})
        return "COORDS"

    def sample_slat(self, cond, coords, params):
        self.stages.append("slat")
        self.calls[-1]["slat_sampler_params"] = params
        return "SLAT"

    def decode_slat(self, slat, formats):
        self.stages.append("decode")
        self.calls[-1]["formats"] = formats
        outputs = {"gaussian": ["GAUSSIAN"]}
        if "mesh" in formats:
            outputs["mesh"] = [type("Extracted", (), {"success": True})()]
        return outputs


class Baked:
    def export(self, file_type):
        assert file_type == "glb"
        return b"glTF-bytes"


class Options:
    """bake.BakeOptions' constructor, recorded."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class TorchMeshBranchTest(unittest.TestCase):
    def provider(self):
        provider = TorchProvider()
        provider._torch, provider._device_name, provider._state = GradTorch(), "Fake GPU", "ready"
        provider._trellis = FakeTrellis(provider._torch)
        provider._bake_options = Options
        self.bakes = []

        def to_glb(app_rep, mesh, options, check):
            self.bakes.append((app_rep, mesh, options.kwargs, provider._torch.grad_enabled))
            return Baked(), None

        provider._to_glb = to_glb
        return provider

    def request(self):
        return SplatRequest(png=b"", seed=11, sparse_structure_steps=5, sparse_structure_cfg=6.5, slat_steps=7, slat_cfg=2.5)

    def patched(self, provider):
        return (mock.patch.object(torch_provider, "premultiplied_rgb", lambda image: "CONDITIONING"),
                mock.patch.object(torch_provider, "gaussian_ply", lambda torch, g: b"PLY of " + g.encode()),
                mock.patch.object(provider, "_trellis_input", lambda request: "IMAGE"))

    def test_mesh_requests_decode_both_formats_and_pass_simplify_and_texture_size_to_to_glb(self):
        provider = self.provider()
        a, b, c = self.patched(provider)
        with a, b, c:
            self.assertTrue(provider.supports_mesh)
            ply, glb = provider.image_to_3d_mesh(self.request(), MeshOptions(simplify=0.9, texture_size=2048))
        self.assertEqual((ply, glb), (b"PLY of GAUSSIAN", b"glTF-bytes"))
        call = provider._trellis.calls[0]
        self.assertEqual(call["formats"], ["gaussian", "mesh"])
        self.assertEqual(call["seed"], 11, "torch is seeded with the request's seed before the first noise")
        self.assertEqual(call["sparse_structure_sampler_params"], {"steps": 5, "cfg_strength": 6.5})
        self.assertEqual(call["slat_sampler_params"], {"steps": 7, "cfg_strength": 2.5})
        self.assertEqual(provider._trellis.stages, ["cond", "sparse structure", "slat", "decode"])
        app_rep, mesh, kwargs, grad = self.bakes[0]
        self.assertEqual(app_rep, "GAUSSIAN")
        self.assertTrue(mesh.success)
        self.assertEqual(kwargs, {"simplify": 0.9, "texture_size": 2048, "seed": 11})
        self.assertTrue(grad, "the bake optimises the texture: it must run with gradients on")

    def test_gaussian_only_requests_decode_no_mesh_and_bake_nothing(self):
        provider = self.provider()
        a, b, c = self.patched(provider)
        with a, b, c:
            self.assertEqual(provider.image_to_3d(self.request()), b"PLY of GAUSSIAN")
        self.assertEqual(provider._trellis.calls[0]["formats"], ["gaussian"])
        self.assertEqual(self.bakes, [])

    def test_without_the_mesh_path_a_mesh_request_is_refused(self):
        provider = self.provider()
        provider._to_glb = None
        self.assertFalse(provider.supports_mesh)
        with self.assertRaisesRegex(ValueError, "--mesh"):
            provider.image_to_3d_mesh(self.request(), MeshOptions(0.95, 1024))


if __name__ == "__main__":
    unittest.main()
